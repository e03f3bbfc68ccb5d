/* PCI configuration space through the legacy 0xCF8/0xCFC mechanism. */
#include "io.h"
#include "pci.h"

#define PCI_ADDR 0xCF8
#define PCI_DATA 0xCFC
#define PIIX3_ID 0x70008086     /* device << 16 | vendor */

static uint32_t cfg_addr(uint8_t bus, uint8_t dev, uint8_t fn, uint8_t off)
{
    return 0x80000000u | (uint32_t)bus << 16 | (uint32_t)dev << 11 |
           (uint32_t)fn << 8 | (off & 0xFCu);
}

static uint32_t read32(uint8_t bus, uint8_t dev, uint8_t fn, uint8_t off)
{
    outl(PCI_ADDR, cfg_addr(bus, dev, fn, off));
    return inl(PCI_DATA);
}

uint32_t pci_read32(const struct pci_dev *d, uint8_t off)
{
    return read32(d->bus, d->dev, d->fn, off);
}

void pci_write32(const struct pci_dev *d, uint8_t off, uint32_t v)
{
    outl(PCI_ADDR, cfg_addr(d->bus, d->dev, d->fn, off));
    outl(PCI_DATA, v);
}

void pci_write16(const struct pci_dev *d, uint8_t off, uint16_t v)
{
    outl(PCI_ADDR, cfg_addr(d->bus, d->dev, d->fn, off));
    outw((uint16_t)(PCI_DATA + (off & 2)), v);
}

int pci_find(uint16_t vendor, uint16_t device, struct pci_dev *out)
{
    for (uint8_t dev = 0; dev < 32; dev++) {
        for (uint8_t fn = 0; fn < 8; fn++) {
            uint32_t id = read32(0, dev, fn, 0x00);
            if ((id & 0xFFFF) == 0xFFFF) {
                if (fn == 0)
                    break;          /* no device in this slot */
                continue;
            }
            if ((id & 0xFFFF) == vendor && id >> 16 == device) {
                out->bus = 0;
                out->dev = dev;
                out->fn = fn;
                return 0;
            }
            /* Header type bit 7: only multi-function devices have fn 1..7. */
            if (fn == 0 && !(read32(0, dev, 0, 0x0C) & 0x00800000))
                break;
        }
    }
    return -1;
}

uint8_t pci_irq_line(const struct pci_dev *d)
{
    uint32_t r = pci_read32(d, 0x3C);
    uint8_t line = (uint8_t)r, pin = (uint8_t)(r >> 8);
    /* qboot writes a wrong line on QEMU's pc machine, so on a PIIX3 ask the
     * interrupt router, using the swizzle QEMU's board wires:
     * PIRQ = (slot - 1 + pin - 1) mod 4, route registers at 0x60-0x63. */
    const struct pci_dev piix3 = {0, 1, 0};
    if (d->bus == 0 && pin >= 1 && pin <= 4 && pci_read32(&piix3, 0x00) == PIIX3_ID) {
        uint8_t route = (uint8_t)(pci_read32(&piix3, 0x60) >> (8 * ((d->dev + pin - 2) & 3)));
        if (!(route & 0x80))    /* bit 7: routing disabled */
            line = route & 0x0F;
    }
    return line;
}
