/* Just enough interrupt handling to leave hlt: the two 8259 PICs remapped to
 * vectors 32-47, the device's line and the PIT unmasked, every vector through
 * the same handler. The 100 Hz PIT tick is a safety net should the device's
 * interrupt line be misreported: the guest then still answers, within 10 ms.
 * (A 1 kHz tick raised ping times tenfold under TCG.) Exception vectors
 * stay empty: a fault ends in a triple fault, i.e. a reset, which under
 * -no-reboot ends QEMU. */
#include "io.h"
#include "irq.h"

#define PIC1_CMD  0x20
#define PIC1_DATA 0x21
#define PIC2_CMD  0xA0
#define PIC2_DATA 0xA1
#define PIC_EOI   0x20
#define IRQ_BASE  32
#define KERNEL_CS 0x08          /* boot.S's GDT */
#define PIT_CMD   0x43
#define PIT_CH0   0x40
#define PIT_HZ    1193182
#define TICK_HZ   100
#define LAPIC_BASE  0xFEE00000u /* the architectural default; nothing here moves it */
#define LAPIC_SVR   0xF0
#define LAPIC_LINT0 0x350
#define LAPIC_SW_ENABLE 0x100
#define LVT_EXTINT  0x700

struct idt_gate {
    uint16_t offset_lo;
    uint16_t selector;
    uint8_t zero;
    uint8_t type;               /* 0x8E: present, ring 0, 32-bit interrupt gate */
    uint16_t offset_hi;
} __attribute__((packed));

struct idt_ptr {
    uint16_t limit;
    uint32_t base;
} __attribute__((packed));

extern void irq_entry(void);

static struct idt_gate idt[IRQ_BASE + 16];
static uint16_t ack;

void irq_handler(void)
{
    (void)inb(ack);
    outb(PIC2_CMD, PIC_EOI);    /* harmless when the slave has nothing in service */
    outb(PIC1_CMD, PIC_EOI);
}

/* The PICs reach the CPU through the local APIC's LINT0 in ExtINT ("virtual
 * wire") mode. SeaBIOS sets that up; qboot leaves the APIC software-disabled,
 * which masks LINT0, so interrupts would never arrive. */
static void lapic_virtual_wire(void)
{
    volatile uint32_t *lapic = (volatile uint32_t *)LAPIC_BASE;
    lapic[LAPIC_SVR / 4] = LAPIC_SW_ENABLE | (IRQ_BASE + 15);  /* spurious -> our handler */
    lapic[LAPIC_LINT0 / 4] = LVT_EXTINT;
}

void irq_enable(uint8_t line, uint16_t ack_port)
{
    ack = ack_port;

    uint32_t entry = (uint32_t)irq_entry;
    for (int v = IRQ_BASE; v < IRQ_BASE + 16; v++)
        idt[v] = (struct idt_gate){(uint16_t)entry, KERNEL_CS, 0, 0x8E, (uint16_t)(entry >> 16)};
    struct idt_ptr p = {sizeof idt - 1, (uint32_t)idt};
    __asm__ volatile("lidt %0" :: "m"(p));

    /* ICW1-4: edge/level comes from the ELCR the firmware set, not from here. */
    outb(PIC1_CMD, 0x11);
    outb(PIC2_CMD, 0x11);
    outb(PIC1_DATA, IRQ_BASE);
    outb(PIC2_DATA, IRQ_BASE + 8);
    outb(PIC1_DATA, 1 << 2);        /* slave on IRQ2 */
    outb(PIC2_DATA, 2);
    outb(PIC1_DATA, 0x01);          /* 8086 mode */
    outb(PIC2_DATA, 0x01);

    lapic_virtual_wire();
    outb(PIT_CMD, 0x34);            /* channel 0, lo/hi byte, rate generator */
    outb(PIT_CH0, (PIT_HZ / TICK_HZ) & 0xFF);
    outb(PIT_CH0, (PIT_HZ / TICK_HZ) >> 8);

    uint16_t mask = (uint16_t)~1u;  /* IRQ0: PIT */
    if (line < 16 && line != 2) {   /* 0xFF: not routed; 2 is the cascade */
        mask &= (uint16_t)~(1u << line);
        if (line >= 8)
            mask &= (uint16_t)~(1u << 2);
    }
    outb(PIC1_DATA, (uint8_t)mask);
    outb(PIC2_DATA, (uint8_t)(mask >> 8));
}
