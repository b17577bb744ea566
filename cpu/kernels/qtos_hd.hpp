#pragma once
/// @file Portable qualifiers for math shared by the CPU and CUDA backends (compiles with g++ and nvcc alike).

#if defined(__CUDACC__)
/// Marks a function callable from host and device code when compiled by nvcc; plain inline for g++.
#define QTOS_HD __host__ __device__
#else
#define QTOS_HD
#endif

#if defined(__CUDACC__)
/// Forces a function inline into its caller: the lane form of the backtest step must be inlined into the
/// multi-versioned (AVX2 / AVX-512) CPU kernel, or its vector arguments would cross an ABI boundary.
#define QTOS_FORCE_INLINE __forceinline__
#elif defined(__GNUC__)
#define QTOS_FORCE_INLINE __attribute__((always_inline)) inline
#else
#define QTOS_FORCE_INLINE inline
#endif
