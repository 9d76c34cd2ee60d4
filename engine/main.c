/* main.c: placeholder until the CLI lands. */
#include <stdio.h>
int main(void) { fputs("budgetd: not yet\n", stderr); return 1; }
