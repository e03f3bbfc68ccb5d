/* Multiboot (v1) entry. The loader leaves us in 32-bit protected mode with
 * paging off, EAX = magic and EBX = the Multiboot info structure. */

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003     /* page-align modules, want memory info */

    .section .multiboot, "a"
    .align 4
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)

    .section .bss
    .align 16
stack_bottom:
    .skip 64 * 1024
stack_top:

    .section .text
    .globl _start
_start:
    cli
    /* Our own GDT: the loader's may live in memory we are about to reuse, and
     * interrupt delivery reloads CS from it. */
    lgdt gdt_ptr
    ljmp $0x08, $1f
1:  mov $0x10, %cx
    mov %cx, %ds
    mov %cx, %es
    mov %cx, %fs
    mov %cx, %gs
    mov %cx, %ss
    mov $stack_top, %esp
    /* The ELF loader zero-fills .bss, but a loader is not obliged to. */
    mov %eax, %edx
    cld
    xor %eax, %eax
    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    rep stosb
    push %ebx               /* info */
    push %edx               /* magic */
    call kmain
    /* fall through: kmain returning means "power off" */

    .globl machine_reset
machine_reset:
    /* Under `qemu -no-reboot` a guest reset ends QEMU with status 0. A triple
     * fault resets on every machine type (pc, q35, microvm) without needing a
     * reset device: load an empty IDT, then any exception cannot be delivered. */
    cli
    lidt empty_idt
    int3
1:  hlt
    jmp 1b

    /* Hardware interrupt entry (see irq.c); general registers are saved
     * because the handler is ordinary C. */
    .globl irq_entry
irq_entry:
    pusha
    cld
    call irq_handler
    popa
    iret

    .section .rodata
    .align 8
gdt:
    .quad 0
    .quad 0x00CF9A000000FFFF    /* 0x08: code, flat 4 GiB, 32-bit */
    .quad 0x00CF92000000FFFF    /* 0x10: data, flat 4 GiB */
gdt_ptr:
    .word gdt_ptr - gdt - 1
    .long gdt
empty_idt:
    .word 0
    .long 0
