/// @file detail/segment_impl.hpp
/// Segments: everything that creates, opens, maps and removes them, one header per concept. Components
/// include this header; each part can be included on its own:
///
/// - detail/segment_location.hpp: where a segment lives, a file's identity, unlink-by-identity;
/// - detail/segment_names.hpp: generated and checked names, listing a user's segments;
/// - detail/session.hpp: the segments this process owns;
/// - detail/mapping.hpp: the mapped region and the mapping handles share;
/// - detail/region_cache.hpp: attaching again shares a live mapping;
/// - detail/segment_space.hpp: free space, out_of_space, sparse segments;
/// - detail/segment_create.hpp: creating a segment;
/// - detail/segment_open.hpp: opening a published segment;
/// - detail/segment_trailer.hpp: ndshm's trailer in a segment, and its owner;
/// - detail/array_segment.hpp: array segments (`.npy` with the trailer).
///
/// All system calls go through sys() (detail/sys.hpp).
#ifndef NDSHM_DETAIL_SEGMENT_IMPL_HPP
#define NDSHM_DETAIL_SEGMENT_IMPL_HPP

#include "../error.hpp"
#include "../options.hpp"
#include "array_segment.hpp"
#include "liveness.hpp"
#include "mapping.hpp"
#include "npy.hpp"
#include "region_cache.hpp"
#include "segment_create.hpp"
#include "segment_location.hpp"
#include "segment_names.hpp"
#include "segment_open.hpp"
#include "segment_space.hpp"
#include "segment_trailer.hpp"
#include "session.hpp"
#include "sync.hpp"
#include "sys.hpp"
#include "trailer.hpp"

#endif
