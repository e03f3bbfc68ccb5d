#ifndef HELLO_PCI_H
#define HELLO_PCI_H

#include <stdint.h>

struct pci_dev {
    uint8_t bus, dev, fn;
};

/* Looks for vendor:device on bus 0 (where QEMU's pc and q35 put -device
 * cards unless told otherwise). 0 on success. */
int pci_find(uint16_t vendor, uint16_t device, struct pci_dev *out);
/* The legacy IRQ (0-15, or 0xFF if none) that the device's INTx pin reaches. */
uint8_t pci_irq_line(const struct pci_dev *d);
uint32_t pci_read32(const struct pci_dev *d, uint8_t off);
void pci_write32(const struct pci_dev *d, uint8_t off, uint32_t v);
void pci_write16(const struct pci_dev *d, uint8_t off, uint16_t v);

#endif
