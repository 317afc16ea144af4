/// @file detail/mpi_code_ref.hpp
/// Code addresses between the ranks of an ndshm::mpi::pool: a task's function travels as its module
/// and its offset in that module, which the dynamic loader gives (dl_iterate_phdr), and is found again
/// in the worker, wherever ASLR put the module there.
#ifndef NDSHM_DETAIL_MPI_CODE_REF_HPP
#define NDSHM_DETAIL_MPI_CODE_REF_HPP

#include <link.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "../error.hpp"
#include "mpi_calls.hpp"

namespace ndshm::mpi::detail {

/// A code address as its module (the path the dynamic loader knows it by; "" for the program itself)
/// and its offset from where that module is loaded: the same on every rank that runs the same
/// executable, wherever ASLR put it.
struct code_ref {
    std::string module;
    std::uint64_t offset = 0;
    template <class A>
    void serialize(A& ar)
    {
        ar(module, offset);
    }
};

/// The module and offset of `addr`, a function of this process.
/// @throws error if no loaded module holds it
inline code_ref code_ref_of(std::uintptr_t addr)
{
    struct search {
        std::uintptr_t addr;
        code_ref out;
        bool found;
    } s{addr, {}, false};
    dl_iterate_phdr(
        [](dl_phdr_info* info, std::size_t, void* p) -> int {
            auto& q = *static_cast<search*>(p);
            for (std::size_t i = 0; i < info->dlpi_phnum; ++i) {
                const ElfW(Phdr)& ph = info->dlpi_phdr[i];
                const std::uintptr_t start = info->dlpi_addr + ph.p_vaddr;
                if (ph.p_type == PT_LOAD && q.addr >= start && q.addr - start < ph.p_memsz) {
                    q.out.module = info->dlpi_name != nullptr ? info->dlpi_name : "";
                    q.out.offset = q.addr - info->dlpi_addr;
                    q.found = true;
                    return 1;
                }
            }
            return 0;
        },
        &s);
    if (!s.found) {
        core::raise<error>("mpi::pool", "", "a task's function lies in no module the dynamic loader knows",
                           "pass a function of the program or of a shared library it links",
                           make_error_code(errc::invalid_argument));
    }
    return s.out;
}

/// The address, in this process, of the code `c` names: inside an executable segment of the module of
/// that name.
/// @throws error if this process has not loaded the module, or the offset is not code in it
inline std::uintptr_t address_of(const code_ref& c)
{
    struct search {
        const code_ref* c;
        std::uintptr_t out;
        int state; // 0: no such module, 1: not code in it, 2: found
    } s{&c, 0, 0};
    dl_iterate_phdr(
        [](dl_phdr_info* info, std::size_t, void* p) -> int {
            auto& q = *static_cast<search*>(p);
            if (q.c->module != (info->dlpi_name != nullptr ? info->dlpi_name : "")) {
                return 0;
            }
            q.state = 1;
            for (std::size_t i = 0; i < info->dlpi_phnum; ++i) {
                const ElfW(Phdr)& ph = info->dlpi_phdr[i];
                if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X) != 0 && q.c->offset >= ph.p_vaddr &&
                    q.c->offset - ph.p_vaddr < ph.p_memsz) {
                    q.out = info->dlpi_addr + static_cast<std::uintptr_t>(q.c->offset);
                    q.state = 2;
                    return 1;
                }
            }
            return 1;
        },
        &s);
    if (s.state != 2) {
        const std::string module = c.module.empty() ? std::string("the program") : "'" + c.module + "'";
        core::raise<error>("mpi::pool", "",
                           s.state == 0 ? "a task's function is in " + module + ", which this rank has not loaded"
                                        : "a task's function is at an offset that is not code in " + module,
                           "every rank of the pool must run the same executable with the same libraries",
                           make_error_code(errc::invalid_argument));
    }
    return s.out;
}

} // namespace ndshm::mpi::detail

#endif
