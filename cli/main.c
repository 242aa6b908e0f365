/* cli/main.c — the vvfs command (skeleton). */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("vvfs %s\n", VVFS_VERSION);
        return 0;
    }
    fprintf(stderr, "usage: vvfs COMMAND ...\n");
    return 2;
}
