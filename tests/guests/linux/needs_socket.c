/*
 * needs_socket.c - a program that cannot do its job without the network: socket() fails
 * with ENOSYS under weft, and the program gives up with exit status 1. `weft explore`
 * must not count that as a bug of the program.
 */
#include <stdio.h>
#include <sys/socket.h>

int main(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) {
        perror("needs_socket: socket");
        return 1;
    }
    return 0;
}
