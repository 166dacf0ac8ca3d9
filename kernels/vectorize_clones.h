// TRIT_VECTORIZE_CLONES: on a reference function, an AVX2 copy of the same scalar code beside the
// baseline one, chosen once at load time by an ifunc resolver (GCC's target_clones). The
// references keep the portable build's bits: both copies compile the same source with
// -ffp-contract=off, so the AVX2 copy only vectorizes (integer code, and float code whose
// summation order the source fixes).
//
// Not under ThreadSanitizer: the resolvers run before its runtime starts and crash the program.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__SANITIZE_THREAD__)
#define TRIT_VECTORIZE_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define TRIT_VECTORIZE_CLONES
#endif
