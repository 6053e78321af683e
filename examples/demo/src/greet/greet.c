#include <stdio.h>
#include "greet.h"

int greet(char *buf, int size, const char *who)
{
    return snprintf(buf, size, "Hello, %s!", who);
}
