#include <stdio.h>
#include <string.h>
#include "greet.h"

#ifndef MOTD
#define MOTD "(no message of the day)"
#endif

int main(int argc, char **argv)
{
    char buf[256];
    greet(buf, sizeof buf, argc > 1 ? argv[1] : "Xen");
    puts(buf);
    puts(MOTD);
    return 0;
}
