/* The starter component: `raisin lock && raisin realize` builds it into ./store. */
#include <stdio.h>

int main(void)
{
    puts("hello from raisin");
    return 0;
}
