#include <stdio.h>
#include "hello.h"

int hello_format(const char *name, char *out, int size) {
    return snprintf(out, (size_t)size, "hello, %s", name);
}
