/*
 * fuzz_check.h - the one assertion the harnesses use.  A broken property
 * aborts, which libFuzzer reports as a crash (and keeps the input), and which
 * fails the ctest replay of the corpus.  Not assert(): it must stay on in
 * every build type.
 */
#ifndef POBOX_FUZZ_CHECK_H
#define POBOX_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                                    \
	do {                                                                                \
		if (!(cond)) {                                                              \
			fprintf(stderr, "%s:%d: property broken: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                            \
		}                                                                           \
	} while (0)

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

#endif
