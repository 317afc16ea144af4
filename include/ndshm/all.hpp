/// @file all.hpp
/// Every public ndshm header except the optional zstd.hpp (it links libzstd) and mpi.hpp (it needs
/// MPI): the core (ndshm.hpp) and every area (on Windows every area but pool.hpp, which needs fork).
/// Convenient, but each area costs compile time: include the area headers you use.
#ifndef NDSHM_ALL_HPP
#define NDSHM_ALL_HPP

#include "channel.hpp"
#include "dict.hpp"
#include "file.hpp"
#include "inspect.hpp"
#include "list.hpp"
#include "lock.hpp"
#include "ndshm.hpp"
#include "object.hpp"
#ifndef _WIN32
#include "pool.hpp"
#endif
#include "queue.hpp"
#include "store.hpp"
#include "uninterruptible.hpp"

#endif
