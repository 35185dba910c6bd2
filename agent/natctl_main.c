#include <stdio.h>
int main(void) { fprintf(stderr, "natctl: not yet\n"); return 1; }
