benchmarks/CMakeFiles/bench_core.dir/bench_core.cpp.o: \
 /work/main/benchmarks/bench_core.cpp /usr/include/stdc-predef.h \
 /work/main/include/ndshm/ndshm.hpp \
 /work/main/include/ndshm/any_ndarray.hpp /usr/include/c++/12/complex \
 /usr/include/x86_64-linux-gnu/c++/12/bits/c++config.h \
 /usr/include/x86_64-linux-gnu/c++/12/bits/os_defines.h \
 /usr/include/features.h /usr/include/features-time64.h \
 /usr/include/x86_64-linux-gnu/bits/wordsize.h \
 /usr/include/x86_64-linux-gnu/bits/timesize.h \
 /usr/include/x86_64-linux-gnu/sys/cdefs.h \
 /usr/include/x86_64-linux-gnu/bits/long-double.h \
 /usr/include/x86_64-linux-gnu/gnu/stubs.h \
 /usr/include/x86_64-linux-gnu/gnu/stubs-64.h \
 /usr/include/x86_64-linux-gnu/c++/12/bits/cpu_defines.h \
 /usr/include/c++/12/pstl/pstl_config.h \
 /usr/include/c++/12/bits/cpp_type_traits.h \
 /usr/include/c++/12/ext/type_traits.h /usr/include/c++/12/cmath \
 /usr/include/math.h \
 /usr/include/x86_64-linux-gnu/bits/libc-header-start.h \
 /usr/include/x86_64-linux-gnu/bits/types.h \
 /usr/include/x86_64-linux-gnu/bits/typesizes.h \
 /usr/include/x86_64-linux-gnu/bits/time64.h \
 /usr/include/x86_64-linux-gnu/bits/math-vector.h \
 /usr/include/x86_64-linux-gnu/bits/libm-simd-decl-stubs.h \
 /usr/include/x86_64-linux-gnu/bits/floatn.h \
 /usr/include/x86_64-linux-gnu/bits/floatn-common.h \
 /usr/include/x86_64-linux-gnu/bits/flt-eval-method.h \
 /usr/include/x86_64-linux-gnu/bits/fp-logb.h \
 /usr/include/x86_64-linux-gnu/bits/fp-fast.h \
 /usr/include/x86_64-linux-gnu/bits/mathcalls-helper-functions.h \
 /usr/include/x86_64-linux-gnu/bits/mathcalls.h \
 /usr/include/x86_64-linux-gnu/bits/mathcalls-narrow.h \
 /usr/include/x86_64-linux-gnu/bits/iscanonical.h \
 /usr/include/c++/12/bits/std_abs.h /usr/include/stdlib.h \
 /usr/lib/gcc/x86_64-linux-gnu/12/include/stddef.h \
 /usr/include/x86_64-linux-gnu/bits/waitflags.h \
 /usr/include/x86_64-linux-gnu/bits/waitstatus.h \
 /usr/include/x86_64-linux-gnu/bits/types/locale_t.h \
 /usr/include/x86_64-linux-gnu/bits/types/__locale_t.h \
 /usr/include/x86_64-linux-gnu/sys/types.h \
 /usr/include/x86_64-linux-gnu/bits/types/clock_t.h \
 /usr/include/x86_64-linux-gnu/bits/types/clockid_t.h \
 /usr/include/x86_64-linux-gnu/bits/types/time_t.h \
 /usr/include/x86_64-linux-gnu/bits/types/timer_t.h \
 /usr/include/x86_64-linux-gnu/bits/stdint-intn.h /usr/include/endian.h \
 /usr/include/x86_64-linux-gnu/bits/endian.h \
 /usr/include/x86_64-linux-gnu/bits/endianness.h \
 /usr/include/x86_64-linux-gnu/bits/byteswap.h \
 /usr/include/x86_64-linux-gnu/bits/uintn-identity.h \
 /usr/include/x86_64-linux-gnu/sys/select.h \
 /usr/include/x86_64-linux-gnu/bits/select.h \
 /usr/include/x86_64-linux-gnu/bits/types/sigset_t.h \
 /usr/include/x86_64-linux-gnu/bits/types/__sigset_t.h \
 /usr/include/x86_64-linux-gnu/bits/types/struct_timeval.h \
 /usr/include/x86_64-linux-gnu/bits/types/struct_timespec.h \
 /usr/include/x86_64-linux-gnu/bits/pthreadtypes.h \
 /usr/include/x86_64-linux-gnu/bits/thread-shared-types.h \
 /usr/include/x86_64-linux-gnu/bits/pthreadtypes-arch.h \
 /usr/include/x86_64-linux-gnu/bits/atomic_wide_counter.h \
 /usr/include/x86_64-linux-gnu/bits/struct_mutex.h \
 /usr/include/x86_64-linux-gnu/bits/struct_rwlock.h /usr/include/alloca.h \
 /usr/include/x86_64-linux-gnu/bits/stdlib-bsearch.h \
 /usr/include/x86_64-linux-gnu/bits/stdlib-float.h \
 /usr/include/c++/12/bits/specfun.h \
 /usr/include/c++/12/bits/stl_algobase.h \
 /usr/include/c++/12/bits/functexcept.h \
 /usr/include/c++/12/bits/exception_defines.h \
 /usr/include/c++/12/ext/numeric_traits.h \
 /usr/include/c++/12/bits/stl_pair.h /usr/include/c++/12/type_traits \
 /usr/include/c++/12/bits/move.h /usr/include/c++/12/bits/utility.h \
 /usr/include/c++/12/bits/stl_iterator_base_types.h \
 /usr/include/c++/12/bits/stl_iterator_base_funcs.h \
 /usr/include/c++/12/bits/concept_check.h \
 /usr/include/c++/12/debug/assertions.h \
 /usr/include/c++/12/bits/stl_iterator.h \
 /usr/include/c++/12/bits/ptr_traits.h /usr/include/c++/12/debug/debug.h \
 /usr/include/c++/12/bits/predefined_ops.h /usr/include/c++/12/limits \
 /usr/include/c++/12/tr1/gamma.tcc \
 /usr/include/c++/12/tr1/special_function_util.h \
 /usr/include/c++/12/tr1/bessel_function.tcc \
 /usr/include/c++/12/tr1/beta_function.tcc \
 /usr/include/c++/12/tr1/ell_integral.tcc \
 /usr/include/c++/12/tr1/exp_integral.tcc \
 /usr/include/c++/12/tr1/hypergeometric.tcc \
 /usr/include/c++/12/tr1/legendre_function.tcc \
 /usr/include/c++/12/tr1/modified_bessel_func.tcc \
 /usr/include/c++/12/tr1/poly_hermite.tcc \
 /usr/include/c++/12/tr1/poly_laguerre.tcc \
 /usr/include/c++/12/tr1/riemann_zeta.tcc /usr/include/c++/12/sstream \
 /usr/include/c++/12/istream /usr/include/c++/12/ios \
 /usr/include/c++/12/iosfwd /usr/include/c++/12/bits/stringfwd.h \
 /usr/include/c++/12/bits/memoryfwd.h /usr/include/c++/12/bits/postypes.h \
 /usr/include/c++/12/cwchar /usr/include/wchar.h \
 /usr/lib/gcc/x86_64-linux-gnu/12/include/stdarg.h \
 /usr/include/x86_64-linux-gnu/bits/wchar.h \
 /usr/include/x86_64-linux-gnu/bits/types/wint_t.h \
 /usr/include/x86_64-linux-gnu/bits/types/mbstate_t.h \
 /usr/include/x86_64-linux-gnu/bits/types/__mbstate_t.h \
 /usr/include/x86_64-linux-gnu/bits/types/__FILE.h \
 /usr/include/x86_64-linux-gnu/bits/types/FILE.h \
 /usr/include/c++/12/exception /usr/include/c++/12/bits/exception.h \
 /usr/include/c++/12/bits/exception_ptr.h \
 /usr/include/c++/12/bits/cxxabi_init_exception.h \
 /usr/include/c++/12/typeinfo /usr/include/c++/12/bits/hash_bytes.h \
 /usr/include/c++/12/new /usr/include/c++/12/bits/nested_exception.h \
 /usr/include/c++/12/bits/char_traits.h /usr/include/c++/12/cstdint \
 /usr/lib/gcc/x86_64-linux-gnu/12/include/stdint.h /usr/include/stdint.h \
 /usr/include/x86_64-linux-gnu/bits/stdint-uintn.h \
 /usr/include/c++/12/bits/localefwd.h \
 /usr/include/x86_64-linux-gnu/c++/12/bits/c++locale.h \
 /usr/include/c++/12/clocale /usr/include/locale.h \
 /usr/include/x86_64-linux-gnu/bits/locale.h /usr/include/c++/12/cctype \
 /usr/include/ctype.h /usr/include/c++/12/bits/ios_base.h \
 /usr/include/c++/12/ext/atomicity.h \
 /usr/include/x86_64-linux-gnu/c++/12/bits/gthr.h \
 /usr/include/x86_64-linux-gnu/c++/12/bits/gthr-default.h \
 /usr/include/pthread.h /usr/include/sched.h \
 /usr/include/x86_64-linux-gnu/bits/sched.h \
 /usr/include/x86_64-linux-gnu/bits/types/struct_sched_param.h \
 /usr/include/x86_64-linux-gnu/bits/cpu-set.h /usr/include/time.h \
 /usr/include/x86_64-linux-gnu/bits/time.h \
 /usr/include/x86_64-linux-gnu/bits/timex.h \
 /usr/include/x86_64-linux-gnu/bits/types/struct_tm.h \
 /usr/include/x86_64-linux-gnu/bits/types/struct_itimerspec.h \
 /usr/include/x86_64-linux-gnu/bits/setjmp.h \
 /usr/include/x86_64-linux-gnu/bits/types/struct___jmp_buf_tag.h \
 /usr/include/x86_64-linux-gnu/bits/pthread_stack_min-dynamic.h \
 /usr/include/x86_64-linux-gnu/c++/12/bits/atomic_word.h \
 /usr/include/x86_64-linux-gnu/sys/single_threaded.h \
 /usr/include/c++/12/bits/locale_classes.h /usr/include/c++/12/string \
 /usr/include/c++/12/bits/allocator.h \
 /usr/include/x86_64-linux-gnu/c++/12/bits/c++allocator.h \
 /usr/include/c++/12/bits/new_allocator.h \
 /usr/include/c++/12/bits/ostream_insert.h \
 /usr/include/c++/12/bits/cxxabi_forced.h \
 /usr/include/c++/12/bits/stl_function.h \
 /usr/include/c++/12/backward/binders.h \
 /usr/include/c++/12/bits/refwrap.h /usr/include/c++/12/bits/invoke.h \
 /usr/include/c++/12/bits/range_access.h \
 /usr/include/c++/12/initializer_list \
 /usr/include/c++/12/bits/basic_string.h \
 /usr/include/c++/12/ext/alloc_traits.h \
 /usr/include/c++/12/bits/alloc_traits.h \
 /usr/include/c++/12/bits/stl_construct.h /usr/include/c++/12/string_view \
 /usr/include/c++/12/bits/functional_hash.h \
 /usr/include/c++/12/bits/string_view.tcc \
 /usr/include/c++/12/ext/string_conversions.h /usr/include/c++/12/cstdlib \
 /usr/include/c++/12/cstdio /usr/include/stdio.h \
 /usr/include/x86_64-linux-gnu/bits/types/__fpos_t.h \
 /usr/include/x86_64-linux-gnu/bits/types/__fpos64_t.h \
 /usr/include/x86_64-linux-gnu/bits/types/struct_FILE.h \
 /usr/include/x86_64-linux-gnu/bits/types/cookie_io_functions_t.h \
 /usr/include/x86_64-linux-gnu/bits/stdio_lim.h \
 /usr/include/x86_64-linux-gnu/bits/stdio.h /usr/include/c++/12/cerrno \
 /usr/include/errno.h /usr/include/x86_64-linux-gnu/bits/errno.h \
 /usr/include/linux/errno.h /usr/include/x86_64-linux-gnu/asm/errno.h \
 /usr/include/asm-generic/errno.h /usr/include/asm-generic/errno-base.h \
 /usr/include/x86_64-linux-gnu/bits/types/error_t.h \
 /usr/include/c++/12/bits/charconv.h \
 /usr/include/c++/12/bits/basic_string.tcc \
 /usr/include/c++/12/bits/locale_classes.tcc \
 /usr/include/c++/12/system_error \
 /usr/include/x86_64-linux-gnu/c++/12/bits/error_constants.h \
 /usr/include/c++/12/stdexcept /usr/include/c++/12/streambuf \
 /usr/include/c++/12/bits/streambuf.tcc \
 /usr/include/c++/12/bits/basic_ios.h \
 /usr/include/c++/12/bits/locale_facets.h /usr/include/c++/12/cwctype \
 /usr/include/wctype.h /usr/include/x86_64-linux-gnu/bits/wctype-wchar.h \
 /usr/include/x86_64-linux-gnu/c++/12/bits/ctype_base.h \
 /usr/include/c++/12/bits/streambuf_iterator.h \
 /usr/include/x86_64-linux-gnu/c++/12/bits/ctype_inline.h \
 /usr/include/c++/12/bits/locale_facets.tcc \
 /usr/include/c++/12/bits/basic_ios.tcc /usr/include/c++/12/ostream \
 /usr/include/c++/12/bits/ostream.tcc \
 /usr/include/c++/12/bits/istream.tcc \
 /usr/include/c++/12/bits/sstream.tcc /usr/include/c++/12/memory \
 /usr/include/c++/12/bits/stl_uninitialized.h \
 /usr/include/c++/12/bits/stl_tempbuf.h \
 /usr/include/c++/12/bits/stl_raw_storage_iter.h \
 /usr/include/c++/12/bits/align.h /usr/include/c++/12/bit \
 /usr/include/c++/12/bits/uses_allocator.h \
 /usr/include/c++/12/bits/unique_ptr.h /usr/include/c++/12/tuple \
 /usr/include/c++/12/bits/shared_ptr.h \
 /usr/include/c++/12/bits/shared_ptr_base.h \
 /usr/include/c++/12/bits/allocated_ptr.h \
 /usr/include/c++/12/ext/aligned_buffer.h \
 /usr/include/c++/12/ext/concurrence.h \
 /usr/include/c++/12/bits/shared_ptr_atomic.h \
 /usr/include/c++/12/bits/atomic_base.h \
 /usr/include/c++/12/bits/atomic_lockfree_defines.h \
 /usr/include/c++/12/backward/auto_ptr.h \
 /usr/include/c++/12/pstl/glue_memory_defs.h \
 /usr/include/c++/12/pstl/execution_defs.h /usr/include/c++/12/utility \
 /usr/include/c++/12/bits/stl_relops.h \
 /work/main/include/ndshm/shared_ndarray.hpp /usr/include/c++/12/cstddef \
 /work/main/include/ndshm/detail/array_handle.hpp \
 /usr/include/c++/12/array /usr/include/c++/12/compare \
 /usr/include/c++/12/cstring /usr/include/string.h /usr/include/strings.h \
 /usr/include/c++/12/vector /usr/include/c++/12/bits/stl_vector.h \
 /usr/include/c++/12/bits/stl_bvector.h \
 /usr/include/c++/12/bits/vector.tcc \
 /work/main/include/ndshm/detail/../dtype.hpp \
 /work/main/include/ndshm/detail/../error.hpp \
 /work/main/include/ndshm/detail/../options.hpp \
 /usr/include/c++/12/chrono /usr/include/c++/12/bits/chrono.h \
 /usr/include/c++/12/ratio /usr/include/c++/12/ctime \
 /usr/include/c++/12/bits/parse_numbers.h \
 /work/main/include/ndshm/detail/array_view.hpp \
 /usr/include/c++/12/algorithm /usr/include/c++/12/bits/stl_algo.h \
 /usr/include/c++/12/bits/algorithmfwd.h \
 /usr/include/c++/12/bits/stl_heap.h \
 /usr/include/c++/12/bits/uniform_int_dist.h \
 /usr/include/c++/12/pstl/glue_algorithm_defs.h \
 /usr/include/c++/12/functional /usr/include/c++/12/bits/std_function.h \
 /usr/include/c++/12/unordered_map /usr/include/c++/12/bits/hashtable.h \
 /usr/include/c++/12/bits/hashtable_policy.h \
 /usr/include/c++/12/bits/enable_special_members.h \
 /usr/include/c++/12/bits/node_handle.h \
 /usr/include/c++/12/bits/unordered_map.h \
 /usr/include/c++/12/bits/erase_if.h \
 /work/main/include/ndshm/detail/xtensor_compat.hpp \
 /usr/include/xtensor/xadapt.hpp /usr/include/xtl/xsequence.hpp \
 /usr/include/xtl/xtl_config.hpp /usr/include/xtl/xmeta_utils.hpp \
 /usr/include/xtl/xfunctional.hpp /usr/include/xtl/xtype_traits.hpp \
 /usr/include/xtensor/xarray.hpp /usr/include/xtensor/xbuffer_adaptor.hpp \
 /usr/include/c++/12/iterator /usr/include/c++/12/bits/stream_iterator.h \
 /usr/include/xtl/xclosure.hpp /usr/include/xtensor/xtensor_config.hpp \
 /usr/include/xtensor/xstorage.hpp /usr/include/xtensor/xexception.hpp \
 /usr/include/c++/12/iostream /usr/include/xtl/xspan_impl.hpp \
 /usr/include/xtensor/xtensor_simd.hpp \
 /usr/include/xtl/xdynamic_bitset.hpp /usr/include/c++/12/climits \
 /usr/lib/gcc/x86_64-linux-gnu/12/include/limits.h \
 /usr/lib/gcc/x86_64-linux-gnu/12/include/syslimits.h \
 /usr/include/limits.h /usr/include/x86_64-linux-gnu/bits/posix1_lim.h \
 /usr/include/x86_64-linux-gnu/bits/local_lim.h \
 /usr/include/linux/limits.h \
 /usr/include/x86_64-linux-gnu/bits/posix2_lim.h \
 /usr/include/x86_64-linux-gnu/bits/xopen_lim.h \
 /usr/include/x86_64-linux-gnu/bits/uio_lim.h \
 /usr/include/xtl/xclosure.hpp /usr/include/xtl/xspan.hpp \
 /usr/include/xtl/xspan_impl.hpp /usr/include/xtl/xiterator_base.hpp \
 /usr/include/xtensor/xutils.hpp /usr/include/xtl/xfunctional.hpp \
 /usr/include/xtl/xmeta_utils.hpp /usr/include/xtl/xtype_traits.hpp \
 /usr/include/xtensor/xcontainer.hpp /usr/include/c++/12/numeric \
 /usr/include/c++/12/bits/stl_numeric.h \
 /usr/include/c++/12/pstl/glue_numeric_defs.h \
 /usr/include/xtensor/xaccessible.hpp /usr/include/xtensor/xstrides.hpp \
 /usr/include/xtensor/xshape.hpp /usr/include/c++/12/cassert \
 /usr/include/assert.h /usr/include/xtensor/xlayout.hpp \
 /usr/include/xtensor/xtensor_forward.hpp \
 /usr/include/xtl/xoptional_sequence.hpp /usr/include/c++/12/bitset \
 /usr/include/xtl/xdynamic_bitset.hpp /usr/include/xtl/xoptional.hpp \
 /usr/include/xtl/xoptional_meta.hpp \
 /usr/include/xtl/xmasked_value_meta.hpp /usr/include/xtl/xsequence.hpp \
 /usr/include/xtensor/xiterable.hpp /usr/include/xtensor/xiterator.hpp \
 /usr/include/xtl/xiterator_base.hpp /usr/include/xtensor/xmath.hpp \
 /usr/include/xtl/xcomplex.hpp /usr/include/xtensor/xaccumulator.hpp \
 /usr/include/xtensor/xexpression.hpp /usr/include/xtensor/xeval.hpp \
 /usr/include/xtensor/xexpression_traits.hpp \
 /usr/include/xtensor/xmanipulation.hpp /usr/include/xtensor/xbuilder.hpp \
 /usr/include/xtensor/xbroadcast.hpp /usr/include/xtensor/xscalar.hpp \
 /usr/include/xtensor/xfunction.hpp /usr/include/xtensor/xgenerator.hpp \
 /usr/include/xtensor/xstrided_view.hpp /usr/include/xtl/xvariant.hpp \
 /usr/include/xtl/xvariant_impl.hpp /usr/include/xtensor/xsemantic.hpp \
 /usr/include/xtensor/xassign.hpp \
 /usr/include/xtensor/xstrided_view_base.hpp \
 /usr/include/xtensor/xslice.hpp /usr/include/c++/12/map \
 /usr/include/c++/12/bits/stl_tree.h /usr/include/c++/12/bits/stl_map.h \
 /usr/include/c++/12/bits/stl_multimap.h \
 /usr/include/xtensor/xoperation.hpp /usr/include/xtensor/xrepeat.hpp \
 /usr/include/xtensor/xreducer.hpp /usr/include/xtensor/xtensor.hpp \
 /usr/include/xtensor/xfixed.hpp /usr/include/xtensor/xarray.hpp \
 /usr/include/xtensor/xbroadcast.hpp \
 /usr/include/xtensor/xbuffer_adaptor.hpp \
 /usr/include/xtensor/xexpression.hpp /usr/include/xtensor/xnoalias.hpp \
 /usr/include/xtensor/xview.hpp /usr/include/xtensor/xview_utils.hpp \
 /work/main/include/ndshm/detail/npy.hpp \
 /work/main/include/ndshm/detail/segment_impl.hpp \
 /usr/include/c++/12/atomic /usr/include/c++/12/mutex \
 /usr/include/c++/12/bits/std_mutex.h \
 /usr/include/c++/12/bits/unique_lock.h /usr/include/c++/12/random \
 /usr/include/c++/12/bits/random.h \
 /usr/include/x86_64-linux-gnu/c++/12/bits/opt_random.h \
 /usr/include/c++/12/bits/random.tcc /usr/include/c++/12/set \
 /usr/include/c++/12/bits/stl_set.h \
 /usr/include/c++/12/bits/stl_multiset.h /usr/include/c++/12/thread \
 /usr/include/c++/12/bits/std_thread.h \
 /usr/include/c++/12/bits/this_thread_sleep.h \
 /usr/include/x86_64-linux-gnu/sys/random.h \
 /work/main/include/ndshm/detail/sync.hpp /usr/include/linux/futex.h \
 /usr/include/linux/types.h /usr/include/x86_64-linux-gnu/asm/types.h \
 /usr/include/asm-generic/types.h /usr/include/asm-generic/int-ll64.h \
 /usr/include/x86_64-linux-gnu/asm/bitsperlong.h \
 /usr/include/asm-generic/bitsperlong.h /usr/include/linux/posix_types.h \
 /usr/include/linux/stddef.h \
 /usr/include/x86_64-linux-gnu/asm/posix_types.h \
 /usr/include/x86_64-linux-gnu/asm/posix_types_64.h \
 /usr/include/asm-generic/posix_types.h \
 /usr/include/x86_64-linux-gnu/sys/syscall.h \
 /usr/include/x86_64-linux-gnu/asm/unistd.h \
 /usr/include/x86_64-linux-gnu/asm/unistd_64.h \
 /usr/include/x86_64-linux-gnu/bits/syscall.h /usr/include/unistd.h \
 /usr/include/x86_64-linux-gnu/bits/posix_opt.h \
 /usr/include/x86_64-linux-gnu/bits/environments.h \
 /usr/include/x86_64-linux-gnu/bits/confname.h \
 /usr/include/x86_64-linux-gnu/bits/getopt_posix.h \
 /usr/include/x86_64-linux-gnu/bits/getopt_core.h \
 /usr/include/x86_64-linux-gnu/bits/unistd_ext.h \
 /usr/include/linux/close_range.h /work/main/include/ndshm/detail/sys.hpp \
 /usr/include/dirent.h /usr/include/x86_64-linux-gnu/bits/dirent.h \
 /usr/include/x86_64-linux-gnu/bits/dirent_ext.h /usr/include/fcntl.h \
 /usr/include/x86_64-linux-gnu/bits/fcntl.h \
 /usr/include/x86_64-linux-gnu/bits/fcntl-linux.h \
 /usr/include/x86_64-linux-gnu/bits/types/struct_iovec.h \
 /usr/include/linux/falloc.h /usr/include/x86_64-linux-gnu/bits/stat.h \
 /usr/include/x86_64-linux-gnu/bits/struct_stat.h \
 /usr/include/x86_64-linux-gnu/sys/file.h \
 /usr/include/x86_64-linux-gnu/sys/mman.h \
 /usr/include/x86_64-linux-gnu/bits/mman.h \
 /usr/include/x86_64-linux-gnu/bits/mman-map-flags-generic.h \
 /usr/include/x86_64-linux-gnu/bits/mman-linux.h \
 /usr/include/x86_64-linux-gnu/bits/mman-shared.h \
 /usr/include/x86_64-linux-gnu/bits/mman_ext.h \
 /usr/include/x86_64-linux-gnu/sys/stat.h \
 /usr/include/x86_64-linux-gnu/bits/statx.h /usr/include/linux/stat.h \
 /usr/include/x86_64-linux-gnu/bits/statx-generic.h \
 /usr/include/x86_64-linux-gnu/bits/types/struct_statx_timestamp.h \
 /usr/include/x86_64-linux-gnu/bits/types/struct_statx.h \
 /usr/include/x86_64-linux-gnu/sys/statvfs.h \
 /usr/include/x86_64-linux-gnu/bits/statvfs.h \
 /work/main/include/ndshm/detail/trailer.hpp \
 /work/main/include/ndshm/dtype.hpp /work/main/include/ndshm/error.hpp \
 /work/main/include/ndshm/options.hpp \
 /work/main/include/ndshm/segment.hpp \
 /work/main/include/ndshm/detail/segment_impl.hpp \
 /work/main/include/ndshm/shared_tensor.hpp \
 /work/main/include/ndshm/channel.hpp /usr/include/signal.h \
 /usr/include/x86_64-linux-gnu/bits/signum-generic.h \
 /usr/include/x86_64-linux-gnu/bits/signum-arch.h \
 /usr/include/x86_64-linux-gnu/bits/types/sig_atomic_t.h \
 /usr/include/x86_64-linux-gnu/bits/types/siginfo_t.h \
 /usr/include/x86_64-linux-gnu/bits/types/__sigval_t.h \
 /usr/include/x86_64-linux-gnu/bits/siginfo-arch.h \
 /usr/include/x86_64-linux-gnu/bits/siginfo-consts.h \
 /usr/include/x86_64-linux-gnu/bits/siginfo-consts-arch.h \
 /usr/include/x86_64-linux-gnu/bits/types/sigval_t.h \
 /usr/include/x86_64-linux-gnu/bits/types/sigevent_t.h \
 /usr/include/x86_64-linux-gnu/bits/sigevent-consts.h \
 /usr/include/x86_64-linux-gnu/bits/sigaction.h \
 /usr/include/x86_64-linux-gnu/bits/sigcontext.h \
 /usr/include/x86_64-linux-gnu/bits/types/stack_t.h \
 /usr/include/x86_64-linux-gnu/sys/ucontext.h \
 /usr/include/x86_64-linux-gnu/bits/sigstack.h \
 /usr/include/x86_64-linux-gnu/bits/sigstksz.h \
 /usr/include/x86_64-linux-gnu/bits/ss_flags.h \
 /usr/include/x86_64-linux-gnu/bits/types/struct_sigstack.h \
 /usr/include/x86_64-linux-gnu/bits/sigthread.h \
 /usr/include/x86_64-linux-gnu/bits/signal_ext.h \
 /work/main/include/ndshm/detail/npy.hpp \
 /work/main/include/ndshm/detail/sync.hpp \
 /work/main/include/ndshm/detail/trailer.hpp \
 /work/main/include/ndshm/file.hpp \
 /work/main/include/ndshm/detail/file_io.hpp \
 /work/main/include/ndshm/detail/object_archive.hpp \
 /usr/include/cereal/cereal.hpp /usr/include/c++/12/unordered_set \
 /usr/include/c++/12/bits/unordered_set.h /usr/include/cereal/macros.hpp \
 /usr/include/cereal/details/traits.hpp /usr/include/c++/12/typeindex \
 /usr/include/cereal/access.hpp /usr/include/cereal/specialize.hpp \
 /usr/include/cereal/details/helpers.hpp \
 /usr/include/cereal/details/static_object.hpp \
 /usr/include/cereal/types/base_class.hpp \
 /usr/include/cereal/details/polymorphic_impl_fwd.hpp \
 /usr/include/cereal/types/common.hpp \
 /work/main/include/ndshm/detail/../shared_ndarray.hpp \
 /work/main/include/ndshm/detail/object_format.hpp \
 /work/main/include/ndshm/detail/object_format.hpp \
 /work/main/include/ndshm/detail/xtensor_compat.hpp \
 /work/main/include/ndshm/object.hpp /usr/include/cereal/types/array.hpp \
 /usr/include/cereal/types/atomic.hpp \
 /usr/include/cereal/types/bitset.hpp \
 /usr/include/cereal/types/string.hpp \
 /usr/include/cereal/types/chrono.hpp \
 /usr/include/cereal/types/complex.hpp \
 /usr/include/cereal/types/deque.hpp /usr/include/c++/12/deque \
 /usr/include/c++/12/bits/stl_deque.h /usr/include/c++/12/bits/deque.tcc \
 /usr/include/cereal/types/forward_list.hpp \
 /usr/include/c++/12/forward_list /usr/include/c++/12/bits/forward_list.h \
 /usr/include/c++/12/bits/forward_list.tcc \
 /usr/include/cereal/types/functional.hpp \
 /usr/include/cereal/types/list.hpp /usr/include/c++/12/list \
 /usr/include/c++/12/bits/stl_list.h /usr/include/c++/12/bits/list.tcc \
 /usr/include/cereal/types/map.hpp \
 /usr/include/cereal/types/concepts/pair_associative_container.hpp \
 /usr/include/cereal/types/memory.hpp \
 /usr/include/cereal/types/polymorphic.hpp \
 /usr/include/cereal/details/util.hpp /usr/include/c++/12/cxxabi.h \
 /usr/include/x86_64-linux-gnu/c++/12/bits/cxxabi_tweaks.h \
 /usr/include/cereal/details/polymorphic_impl.hpp \
 /usr/include/c++/12/stack /usr/include/c++/12/bits/stl_stack.h \
 /usr/include/cereal/types/optional.hpp /usr/include/c++/12/optional \
 /usr/include/cereal/types/queue.hpp /usr/include/c++/12/queue \
 /usr/include/c++/12/bits/stl_queue.h /usr/include/cereal/types/set.hpp \
 /usr/include/cereal/types/stack.hpp /usr/include/cereal/types/tuple.hpp \
 /usr/include/cereal/types/unordered_map.hpp \
 /usr/include/cereal/types/unordered_set.hpp \
 /usr/include/cereal/types/utility.hpp \
 /usr/include/cereal/types/valarray.hpp /usr/include/c++/12/valarray \
 /usr/include/c++/12/bits/valarray_array.h \
 /usr/include/c++/12/bits/valarray_array.tcc \
 /usr/include/c++/12/bits/valarray_before.h \
 /usr/include/c++/12/bits/slice_array.h \
 /usr/include/c++/12/bits/valarray_after.h \
 /usr/include/c++/12/bits/gslice.h \
 /usr/include/c++/12/bits/gslice_array.h \
 /usr/include/c++/12/bits/mask_array.h \
 /usr/include/c++/12/bits/indirect_array.h \
 /usr/include/cereal/types/variant.hpp /usr/include/c++/12/variant \
 /usr/include/cereal/types/vector.hpp \
 /work/main/include/ndshm/inspect.hpp \
 /usr/include/x86_64-linux-gnu/sys/sysmacros.h \
 /usr/include/x86_64-linux-gnu/bits/sysmacros.h \
 /work/main/include/ndshm/detail/sys.hpp \
 /work/main/include/ndshm/lock.hpp /work/main/include/ndshm/pool.hpp \
 /usr/include/poll.h /usr/include/x86_64-linux-gnu/sys/poll.h \
 /usr/include/x86_64-linux-gnu/bits/poll.h \
 /usr/include/x86_64-linux-gnu/sys/wait.h \
 /usr/include/x86_64-linux-gnu/bits/types/idtype_t.h \
 /work/main/include/ndshm/detail/pool_impl.hpp \
 /usr/include/c++/12/csignal /usr/include/cereal/archives/binary.hpp \
 /work/main/include/ndshm/detail/../segment.hpp \
 /work/main/include/ndshm/detail/array_handoff.hpp \
 /work/main/include/ndshm/queue.hpp \
 /work/main/include/ndshm/detail/array_handoff.hpp \
 /work/main/include/ndshm/detail/queue_format.hpp \
 /work/main/include/ndshm/store.hpp /usr/include/c++/12/filesystem \
 /usr/include/c++/12/bits/fs_fwd.h /usr/include/c++/12/bits/fs_path.h \
 /usr/include/c++/12/locale \
 /usr/include/c++/12/bits/locale_facets_nonio.h \
 /usr/include/x86_64-linux-gnu/c++/12/bits/time_members.h \
 /usr/include/x86_64-linux-gnu/c++/12/bits/messages_members.h \
 /usr/include/libintl.h /usr/include/c++/12/bits/codecvt.h \
 /usr/include/c++/12/bits/locale_facets_nonio.tcc \
 /usr/include/c++/12/bits/locale_conv.h /usr/include/c++/12/iomanip \
 /usr/include/c++/12/bits/quoted_string.h /usr/include/c++/12/codecvt \
 /usr/include/c++/12/bits/fs_dir.h /usr/include/c++/12/bits/fs_ops.h \
 /work/main/include/ndshm/detail/store_impl.hpp \
 /work/main/include/ndshm/detail/file_io.hpp \
 /work/main/include/ndshm/uninterruptible.hpp \
 /usr/include/benchmark/benchmark.h /usr/include/benchmark/export.h \
 /usr/include/c++/12/fstream \
 /usr/include/x86_64-linux-gnu/c++/12/bits/basic_file.h \
 /usr/include/x86_64-linux-gnu/c++/12/bits/c++io.h \
 /usr/include/c++/12/bits/fstream.tcc
