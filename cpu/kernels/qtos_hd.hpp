#pragma once
/// @file Portable qualifiers for math shared by the CPU and CUDA backends (compiles with g++ and nvcc alike).

#if defined(__CUDACC__)
/// Marks a function callable from host and device code when compiled by nvcc; plain inline for g++.
#define QTOS_HD __host__ __device__
#else
#define QTOS_HD
#endif
