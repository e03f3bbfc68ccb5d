/* x86 port I/O and the few freestanding helpers the guest needs. */
#ifndef HELLO_IO_H
#define HELLO_IO_H

#include <stddef.h>
#include <stdint.h>

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" :: "a"(v), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" :: "a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" :: "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint16_t inw(uint16_t port) { uint16_t v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint32_t inl(uint16_t port) { uint32_t v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

/* Orders our memory writes before the device sees them (virtio rings). */
static inline void barrier(void) { __asm__ volatile("" ::: "memory"); }

void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int streq(const char *a, const char *b);
int starts_with(const char *s, const char *prefix);

/* Serial console on COM1 (serial.c). */
void serial_init(void);
void put(const char *s);
void put_n(const char *s, size_t n);
void put_u(uint32_t v);
void put_ip(const uint8_t ip[4]);

void machine_reset(void) __attribute__((noreturn));

#endif
