/// @file zstd.hpp
/// Opt-in zstd compression for the arrays of object files. Not included by ndshm.hpp: include it
/// where you save or load compressed object files, and link libzstd (Debian: libzstd-dev; CMake:
/// `find_package(zstd)` and `zstd::libzstd_shared`). The rest of ndshm links nothing.
///
///     ndshm::file_options fo;
///     fo.compression = ndshm::zstd();            // level 3; ndshm::zstd(19) compresses harder
///     ndshm::save_object("frame.obj.npy", f, fo);
///     auto g = ndshm::read_object<frame>("frame.obj.npy", fo);
#ifndef NDSHM_ZSTD_HPP
#define NDSHM_ZSTD_HPP

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <zstd.h>

#include "detail/object_format.hpp"
#include "error.hpp"
#include "file.hpp"

namespace ndshm {

/// The zstd codec: each array is one zstd frame, with a checksum.
class zstd_codec final : public codec {
public:
    /// `level`: zstd's compression level, 1 (fast) to ZSTD_maxCLevel() (small); 3 is zstd's default.
    explicit zstd_codec(int level = 3) : m_level(level) {}

    std::uint32_t id() const noexcept override { return detail::codec_zstd; }
    const char* name() const noexcept override { return "zstd"; }
    int level() const noexcept { return m_level; }

    std::vector<unsigned char> compress(const void* src, std::size_t n) const override
    {
        const std::unique_ptr<ZSTD_CCtx, std::size_t (*)(ZSTD_CCtx*)> cctx(ZSTD_createCCtx(), ZSTD_freeCCtx);
        if (!cctx) {
            detail::raise<out_of_space>("zstd compress", "", "ZSTD_createCCtx failed", "free some memory",
                                        detail::errno_code(ENOMEM));
        }
        // A checksum per frame: a damaged file is an error on load, never silently wrong data.
        (void)ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_compressionLevel, m_level);
        (void)ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_checksumFlag, 1);
        std::vector<unsigned char> out(ZSTD_compressBound(n));
        const std::size_t r = ZSTD_compress2(cctx.get(), out.data(), out.size(), src, n);
        if (ZSTD_isError(r) != 0) {
            detail::raise<error>("zstd compress", "", ZSTD_getErrorName(r), "check the compression level",
                                 detail::errno_code(EINVAL));
        }
        out.resize(r);
        return out;
    }

    void decompress(const void* src, std::size_t n, void* dst, std::size_t out_n,
                    const std::string& what) const override
    {
        const std::size_t r = ZSTD_decompress(dst, out_n, src, n);
        if (ZSTD_isError(r) != 0 || r != out_n) {
            detail::raise<format_error>("zstd decompress", what,
                                        ZSTD_isError(r) != 0
                                            ? std::string("corrupt compressed data: ") + ZSTD_getErrorName(r)
                                            : "the data decompresses to " + std::to_string(r) + " bytes, not " +
                                                  std::to_string(out_n),
                                        "the file was damaged; recreate it", make_error_code(errc::corrupt_object));
        }
    }

private:
    int m_level;
};

/// A zstd codec for file_options::compression.
inline std::shared_ptr<const codec> zstd(int level = 3) { return std::make_shared<const zstd_codec>(level); }

} // namespace ndshm

#endif
