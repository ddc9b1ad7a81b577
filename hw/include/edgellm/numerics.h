// edgellm numerics contract, C++ side (docs/numerics.md; numpy twin: models/numerics.py).
//
// Every function is a fixed sequence of IEEE-754 binary32 operations. Built with
// -ffp-contract=off (no FMA contraction) and without -ffast-math, C simulation reproduces the
// golden model bit for bit. Constants are written as (float)<double literal>, which rounds the
// same way numpy's np.float32(<python float>) does. Synthesizable: no libm transcendental is used
// except sqrt (IEEE correctly rounded in both C and Vitis HLS's hls::sqrt for float).
#pragma once

// Storage of the element-wise row buffers (elementwise.h): bram (default) or uram, chosen per design
// by the compiler (edgellm_config.h defines EDGELLM_ACT_STORAGE before including the kernels). A
// BIND_STORAGE impl must be a literal, so the pragma is built with _Pragma from the macro (the Vitis
// HLS idiom for parameterized pragmas).
#ifndef EDGELLM_ACT_STORAGE
#define EDGELLM_ACT_STORAGE bram
#endif
#define EDGELLM_PRAGMA_STR(x) _Pragma(#x)
#define EDGELLM_PRAGMA(x) EDGELLM_PRAGMA_STR(x)
#define EDGELLM_ACT_BIND(var, kind) \
  EDGELLM_PRAGMA(HLS BIND_STORAGE variable = var type = kind impl = EDGELLM_ACT_STORAGE)

// The contract in two headers: the scalar functions (rint, bit casts, f16 conversion, kv_elem, exp_f,
// the quantization and activation scalars: numerics_scalar.h) and the lane reductions with their
// C-simulation trace (LaneUnits, LaneRing, lane_tree, lane_sum, RowFuse, absmax: numerics_lanes.h).
#include "edgellm/numerics_scalar.h"
#include "edgellm/numerics_lanes.h"
