#ifndef HELLO_NET_H
#define HELLO_NET_H

#include <stdint.h>

/* Parses the leading "A.B.C.D" of s (e.g. a netdev.ip value). 0 on success. */
int parse_ipv4(const char *s, uint8_t ip[4]);

/* Finds the virtio-net device, takes `ip` and answers ARP and ping forever.
 * Returns only on failure, after printing why. */
void net_serve(const uint8_t ip[4]);

#endif
