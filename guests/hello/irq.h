#ifndef HELLO_IRQ_H
#define HELLO_IRQ_H

#include <stdint.h>

/* Routes legacy IRQ `line` (ignored unless 0-15) and a 100 Hz PIT tick to a handler that reads `ack_port` (to lower the device's
 * level-triggered line) and signals EOI, so the CPU can sleep in hlt until a
 * device needs it. Interrupts are still masked (IF=0) on return. */
void irq_enable(uint8_t line, uint16_t ack_port);

#endif
