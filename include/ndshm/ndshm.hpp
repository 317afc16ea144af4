/// @file ndshm.hpp
/// Everything in ndshm's core: shared_ndarray, attach_any, the segment functions and the errors.
#ifndef NDSHM_NDSHM_HPP
#define NDSHM_NDSHM_HPP

#include "any_ndarray.hpp"
#include "channel.hpp"
#include "dtype.hpp"
#include "error.hpp"
#include "file.hpp"
#include "inspect.hpp"
#include "lock.hpp"
#include "object.hpp"
#include "options.hpp"
#include "pool.hpp"
#include "queue.hpp"
#include "segment.hpp"
#include "shared_ndarray.hpp"
#include "store.hpp"
#include "uninterruptible.hpp"

#endif
