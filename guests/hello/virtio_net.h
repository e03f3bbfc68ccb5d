#ifndef HELLO_VIRTIO_NET_H
#define HELLO_VIRTIO_NET_H

#include <stddef.h>
#include <stdint.h>

/* Brings up the first legacy/transitional virtio-net PCI device. 0 on success. */
int virtio_net_init(uint8_t mac[6]);

/* Polls for one received frame; returns its length (0 if none) and sets *frame.
 * The frame stays valid until the next call. */
size_t virtio_net_recv(const uint8_t **frame);

/* Sends one Ethernet frame (at most 1514 bytes), waiting until the device took it. */
void virtio_net_send(const uint8_t *frame, size_t len);

/* Lets the device interrupt on receive (plus a timer tick as a fallback) so
 * the caller can hlt while idle. */
void virtio_net_enable_irq(void);

#endif
