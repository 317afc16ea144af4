// ndshm's non-template functions, compiled once when NDSHM_SEPARATE_COMPILATION is ON (see
// include/ndshm/detail/config.hpp).
#include <ndshm/src.hpp>
