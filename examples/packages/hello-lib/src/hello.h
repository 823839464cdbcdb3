#ifndef HELLO_H
#define HELLO_H
/* Writes a greeting for `name` into `out` (at most `size` bytes); returns its length. */
int hello_format(const char *name, char *out, int size);
#endif
