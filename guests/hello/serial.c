/* COM1 console, 115200 8N1, polled. Bytes go out raw: no "\n" -> "\r\n"
 * translation, so the host sees exactly what the guest printed. */
#include "io.h"

#define COM1 0x3f8

void serial_init(void)
{
    outb(COM1 + 1, 0x00);   /* no interrupts */
    outb(COM1 + 3, 0x80);   /* DLAB on to set the divisor */
    outb(COM1 + 0, 0x01);   /* 115200 = 115200 / 1 */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03);   /* 8N1, DLAB off */
    outb(COM1 + 2, 0xC7);   /* FIFO on, cleared */
    outb(COM1 + 4, 0x03);   /* DTR, RTS */
}

static void put_c(char c)
{
    while (!(inb(COM1 + 5) & 0x20))   /* transmit holding register empty */
        ;
    outb(COM1, (uint8_t)c);
}

void put_n(const char *s, size_t n)
{
    while (n--)
        put_c(*s++);
}

void put(const char *s)
{
    while (*s)
        put_c(*s++);
}

void put_u(uint32_t v)
{
    char buf[10];
    int i = 0;
    do {
        buf[i++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (i)
        put_c(buf[--i]);
}

void put_ip(const uint8_t ip[4])
{
    for (int i = 0; i < 4; i++) {
        if (i)
            put_c('.');
        put_u(ip[i]);
    }
}
