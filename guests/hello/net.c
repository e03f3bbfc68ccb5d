/* Just enough IPv4 to be pinged: answers ARP requests and ICMP echo requests
 * for one address. Everything else is dropped. */
#include "io.h"
#include "net.h"
#include "virtio_net.h"

#define ETH_HLEN      14
#define ETHERTYPE_IP  0x0800
#define ETHERTYPE_ARP 0x0806
#define ARP_LEN       28
#define IPPROTO_ICMP  1
#define ICMP_ECHO_REPLY   0
#define ICMP_ECHO_REQUEST 8

static uint8_t our_mac[6];
static uint8_t our_ip[4];
static uint8_t reply[1514];

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static void set16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }

/* RFC 1071 Internet checksum over big-endian 16-bit words. */
static uint16_t inet_checksum(const uint8_t *p, size_t len)
{
    uint32_t sum = 0;
    for (; len > 1; p += 2, len -= 2)
        sum += get16(p);
    if (len)
        sum += (uint32_t)p[0] << 8;
    while (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16);
    return (uint16_t)~sum;
}

int parse_ipv4(const char *s, uint8_t ip[4])
{
    for (int i = 0; i < 4; i++) {
        uint32_t v = 0;
        int digits = 0;
        for (; *s >= '0' && *s <= '9' && digits < 3; s++, digits++)
            v = v * 10 + (uint32_t)(*s - '0');
        if (!digits || v > 255 || (i < 3 && *s++ != '.'))
            return -1;
        ip[i] = (uint8_t)v;
    }
    return (*s == '\0' || *s == '/' || *s == ':') ? 0 : -1;
}

static void handle_arp(const uint8_t *f, size_t len)
{
    const uint8_t *a = f + ETH_HLEN;
    if (len < ETH_HLEN + ARP_LEN || get16(a) != 1 || get16(a + 2) != ETHERTYPE_IP ||
        a[4] != 6 || a[5] != 4 || get16(a + 6) != 1 || memcmp(a + 24, our_ip, 4) != 0)
        return;
    uint8_t *r = reply, *ra = reply + ETH_HLEN;
    memcpy(r, f + 6, 6);
    memcpy(r + 6, our_mac, 6);
    set16(r + 12, ETHERTYPE_ARP);
    memcpy(ra, a, 6);               /* htype, ptype, hlen, plen */
    set16(ra + 6, 2);               /* reply */
    memcpy(ra + 8, our_mac, 6);
    memcpy(ra + 14, our_ip, 4);
    memcpy(ra + 18, a + 8, 10);     /* target = the asker's MAC and IP */
    virtio_net_send(reply, ETH_HLEN + ARP_LEN);
}

static void handle_ip(const uint8_t *f, size_t len)
{
    const uint8_t *ip = f + ETH_HLEN;
    if (len < ETH_HLEN + 20 || ip[0] >> 4 != 4)
        return;
    size_t ihl = (size_t)(ip[0] & 0xF) * 4;
    size_t total = get16(ip + 2);
    if (ihl < 20 || total < ihl + 8 || ETH_HLEN + total > len || total > sizeof reply - ETH_HLEN)
        return;
    if (ip[9] != IPPROTO_ICMP || memcmp(ip + 16, our_ip, 4) != 0 ||
        (get16(ip + 6) & 0x3FFF) != 0)      /* fragments: not worth reassembling */
        return;
    if (ip[ihl] != ICMP_ECHO_REQUEST || inet_checksum(ip + ihl, total - ihl) != 0)
        return;

    uint8_t *r = reply, *rip = reply + ETH_HLEN;
    memcpy(r, f + 6, 6);
    memcpy(r + 6, our_mac, 6);
    set16(r + 12, ETHERTYPE_IP);
    memcpy(rip, ip, total);
    memcpy(rip + 12, our_ip, 4);
    memcpy(rip + 16, ip + 12, 4);
    rip[8] = 64;                    /* fresh TTL */
    set16(rip + 10, 0);
    set16(rip + 10, inet_checksum(rip, ihl));
    uint8_t *icmp = rip + ihl;       /* id, sequence and payload echo back as is */
    icmp[0] = ICMP_ECHO_REPLY;
    set16(icmp + 2, 0);
    set16(icmp + 2, inet_checksum(icmp, total - ihl));
    virtio_net_send(reply, ETH_HLEN + total);
}

void net_serve(const uint8_t ip[4])
{
    memcpy(our_ip, ip, 4);
    if (virtio_net_init(our_mac) != 0) {
        put("serve: no legacy virtio-net PCI device\n");
        return;
    }
    virtio_net_enable_irq();
    put("net up ");
    put_ip(our_ip);
    put("\n");
    for (;;) {
        const uint8_t *f;
        size_t len = virtio_net_recv(&f);
        if (len == 0) {
            /* sti takes effect after hlt starts, so an interrupt raised since
             * the check above is still pending and wakes us: none is lost. */
            __asm__ volatile("sti; hlt; cli");
            continue;
        }
        if (len < ETH_HLEN)
            continue;
        if (get16(f + 12) == ETHERTYPE_ARP)
            handle_arp(f, len);
        else if (get16(f + 12) == ETHERTYPE_IP)
            handle_ip(f, len);
    }
}
