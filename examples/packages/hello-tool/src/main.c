#include <stdio.h>
#include <stdlib.h>
#include <hello.h>

int main(int argc, char **argv) {
    char buf[256];
    const char *greeting = getenv("HELLO_GREETING");
    hello_format(argc > 1 ? argv[1] : "world", buf, sizeof buf);
    printf("%s%s\n", buf, greeting ? greeting : "");
    return 0;
}
