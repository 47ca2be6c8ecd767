/* The header's version macros, nhc_version() and Cargo.toml (passed in by
 * CMake as NHC_EXPECTED_VERSION) must agree. */
#include <stdio.h>
#include <string.h>

#include "testlib.h"

#define STR2(x) #x
#define STR(x) STR2(x)

int main(void) {
    const char *macros = STR(NHC_VERSION_MAJOR) "." STR(NHC_VERSION_MINOR) "." STR(NHC_VERSION_PATCH);
    printf("header %s, library %s, Cargo.toml %s\n", macros, nhc_version(), NHC_EXPECTED_VERSION);
    CHECK(strcmp(macros, NHC_EXPECTED_VERSION) == 0);
    CHECK(strcmp(nhc_version(), NHC_EXPECTED_VERSION) == 0);
    CHECK(NHC_VERSION_NUMBER ==
          NHC_VERSION_MAJOR * 10000 + NHC_VERSION_MINOR * 100 + NHC_VERSION_PATCH);
    return 0;
}
