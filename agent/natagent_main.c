#include <stdio.h>
int main(void) { fprintf(stderr, "natagent: not yet\n"); return 1; }
