#ifndef GREET_H
#define GREET_H
/* Format a greeting for `who` into buf; returns the length written. */
int greet(char *buf, int size, const char *who);
#endif
