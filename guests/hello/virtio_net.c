/*
 * virtio-net over the legacy (virtio 0.9.5) PCI interface: registers in I/O
 * BAR0, split virtqueues whose page frame number is written to QUEUE_PFN.
 * QEMU offers it on transitional devices, so `-device virtio-net-pci,
 * disable-modern=on` (or the default transitional device) works. Everything is
 * polled: paging is off (physical = virtual) and interrupts stay disabled.
 */
#include "io.h"
#include "irq.h"
#include "pci.h"
#include "virtio_net.h"

#define VIRTIO_VENDOR        0x1AF4
#define VIRTIO_NET_LEGACY_ID 0x1000     /* transitional virtio-net */
#define FALLBACK_IOBASE      0xC000

/* Legacy register offsets in BAR0. */
#define REG_HOST_FEATURES  0x00
#define REG_GUEST_FEATURES 0x04
#define REG_QUEUE_PFN      0x08
#define REG_QUEUE_NUM      0x0C
#define REG_QUEUE_SEL      0x0E
#define REG_QUEUE_NOTIFY   0x10
#define REG_STATUS         0x12
#define REG_ISR            0x13     /* reading it lowers the INTx line */
#define REG_CONFIG         0x14     /* device config; 0x18 once MSI-X is on, which we never enable */

#define STATUS_ACKNOWLEDGE 1
#define STATUS_DRIVER      2
#define STATUS_DRIVER_OK   4

#define NET_F_MAC (1u << 5)

#define DESC_F_WRITE         2
#define AVAIL_F_NO_INTERRUPT 1

#define RXQ 0
#define TXQ 1

#define QUEUE_MAX    1024       /* the legacy ring size is the device's; we accept up to this */
#define QUEUE_ALIGN  4096
#define RX_BUFS      16
#define BUF_SIZE     2048
#define NET_HDR_LEN  10         /* struct virtio_net_hdr, without MRG_RXBUF */

struct vring_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct vring_avail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[];
};

struct vring_used_elem {
    uint32_t id;
    uint32_t len;
};

struct vring_used {
    uint16_t flags;
    uint16_t idx;
    struct vring_used_elem ring[];
};

struct vq {
    uint16_t size;
    uint16_t last_used;
    struct vring_desc *desc;
    struct vring_avail *avail;
    volatile struct vring_used *used;
};

/* Worst case for QUEUE_MAX: 16 KiB descriptors + avail, padded, + 8 KiB used. */
#define VQ_BYTES (32 * 1024)
static uint8_t rxq_mem[VQ_BYTES] __attribute__((aligned(QUEUE_ALIGN)));
static uint8_t txq_mem[VQ_BYTES] __attribute__((aligned(QUEUE_ALIGN)));
static uint8_t rx_buf[RX_BUFS][BUF_SIZE] __attribute__((aligned(16)));
static uint8_t tx_buf[BUF_SIZE] __attribute__((aligned(16)));

static uint16_t iobase;
static uint8_t irq_line;
static struct vq rxq, txq;
static int rx_held = -1;   /* descriptor handed to the caller, re-posted on the next recv */

static int vq_setup(struct vq *q, uint16_t index, uint8_t *mem)
{
    outw(iobase + REG_QUEUE_SEL, index);
    uint16_t size = inw(iobase + REG_QUEUE_NUM);
    if (size == 0 || size > QUEUE_MAX)
        return -1;
    memset(mem, 0, VQ_BYTES);
    /* Legacy layout: descriptors, avail ring, then the used ring on the next
     * QUEUE_ALIGN boundary. */
    size_t avail_end = 16u * size + 4 + 2u * size + 2;
    size_t used_off = (avail_end + QUEUE_ALIGN - 1) & ~(size_t)(QUEUE_ALIGN - 1);
    q->size = size;
    q->last_used = 0;
    q->desc = (struct vring_desc *)mem;
    q->avail = (struct vring_avail *)(mem + 16u * size);
    q->used = (volatile struct vring_used *)(mem + used_off);
    q->avail->flags = AVAIL_F_NO_INTERRUPT;
    outl(iobase + REG_QUEUE_PFN, (uint32_t)mem / QUEUE_ALIGN);
    return 0;
}

static void vq_post(struct vq *q, uint16_t desc)
{
    q->avail->ring[q->avail->idx % q->size] = desc;
    barrier();                  /* entry visible before the index moves */
    q->avail->idx++;
    barrier();
}

int virtio_net_init(uint8_t mac[6])
{
    struct pci_dev d;
    if (pci_find(VIRTIO_VENDOR, VIRTIO_NET_LEGACY_ID, &d) != 0)
        return -1;
    uint32_t bar0 = pci_read32(&d, 0x10);
    if (!(bar0 & 1))
        return -1;              /* no I/O BAR: not a legacy-capable device */
    if ((bar0 & 0xFFFC) == 0) {
        /* Minimal firmware (qboot) leaves BARs unassigned; the window at
         * 0xC000 is free there as nothing else has been given one. */
        pci_write32(&d, 0x10, FALLBACK_IOBASE);
        bar0 = pci_read32(&d, 0x10);
    }
    iobase = (uint16_t)(bar0 & 0xFFFC);
    irq_line = pci_irq_line(&d);
    pci_write16(&d, 0x04, 0x0005);   /* I/O space + bus master (device DMAs our rings) */

    outb(iobase + REG_STATUS, 0);    /* reset */
    outb(iobase + REG_STATUS, STATUS_ACKNOWLEDGE);
    outb(iobase + REG_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    /* Only MAC: no offloads means plain frames and the 10-byte header. */
    if (!(inl(iobase + REG_HOST_FEATURES) & NET_F_MAC))
        return -1;
    outl(iobase + REG_GUEST_FEATURES, NET_F_MAC);
    if (vq_setup(&rxq, RXQ, rxq_mem) != 0 || vq_setup(&txq, TXQ, txq_mem) != 0)
        return -1;
    for (int i = 0; i < 6; i++)
        mac[i] = inb(iobase + REG_CONFIG + i);

    for (uint16_t i = 0; i < RX_BUFS && i < rxq.size; i++) {
        rxq.desc[i] = (struct vring_desc){(uint32_t)rx_buf[i], BUF_SIZE, DESC_F_WRITE, 0};
        vq_post(&rxq, i);
    }
    txq.desc[0] = (struct vring_desc){(uint32_t)tx_buf, 0, 0, 0};
    outb(iobase + REG_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DRIVER_OK);
    outw(iobase + REG_QUEUE_NOTIFY, RXQ);
    return 0;
}

size_t virtio_net_recv(const uint8_t **frame)
{
    if (rx_held >= 0) {
        vq_post(&rxq, (uint16_t)rx_held);
        outw(iobase + REG_QUEUE_NOTIFY, RXQ);
        rx_held = -1;
    }
    if (rxq.last_used == rxq.used->idx)
        return 0;
    barrier();                  /* read the element only after seeing the index */
    volatile struct vring_used_elem *e = &rxq.used->ring[rxq.last_used % rxq.size];
    uint32_t id = e->id, len = e->len;
    rxq.last_used++;
    rx_held = (int)id;
    if (id >= RX_BUFS || len <= NET_HDR_LEN)
        return 0;
    *frame = rx_buf[id] + NET_HDR_LEN;
    return len - NET_HDR_LEN;
}

void virtio_net_send(const uint8_t *frame, size_t len)
{
    if (len > BUF_SIZE - NET_HDR_LEN)
        return;
    memset(tx_buf, 0, NET_HDR_LEN);  /* no checksum offload, no GSO */
    memcpy(tx_buf + NET_HDR_LEN, frame, len);
    txq.desc[0].len = (uint32_t)(NET_HDR_LEN + len);
    vq_post(&txq, 0);
    outw(iobase + REG_QUEUE_NOTIFY, TXQ);
    /* One buffer in flight at a time keeps descriptor bookkeeping trivial. */
    while (txq.last_used == txq.used->idx)
        __asm__ volatile("pause");
    txq.last_used++;
}

void virtio_net_enable_irq(void)
{
    irq_enable(irq_line, iobase + REG_ISR);
    rxq.avail->flags = 0;       /* interrupt on receive; tx is still polled */
}
