/* The urunc sample unikernel: prints its argv, environment and network
 * parameters on COM1 and powers off, or with `serve` answers ARP and ping. */
#include "cmdline.h"
#include "io.h"
#include "net.h"

#define MULTIBOOT_LOADER_MAGIC 0x2BADB002
#define MULTIBOOT_INFO_CMDLINE (1u << 2)
#define MULTIBOOT_INFO_MODS (1u << 3)
#define MODULE_SHOWN 64

struct multiboot_info {
    uint32_t flags;
    uint32_t mem_lower, mem_upper;
    uint32_t boot_device;
    uint32_t cmdline;
    uint32_t mods_count, mods_addr;
};

struct multiboot_module {
    uint32_t mod_start, mod_end;
    uint32_t string, reserved;
};

static char cmdline_buf[8192];
static struct cmdline cl;

static void put_item(const char *name, int index, const char *value)
{
    put(name);
    if (index >= 0) {
        put("[");
        put_u((uint32_t)index);
        put("]");
    }
    put("=<");
    put(value);
    put(">\n");
}

/* The loader's copy lives in memory we do not own; tokenizing edits in place. */
static void copy_cmdline(uint32_t magic, const struct multiboot_info *mbi)
{
    if (magic != MULTIBOOT_LOADER_MAGIC || !(mbi->flags & MULTIBOOT_INFO_CMDLINE))
        return;
    const char *src = (const char *)mbi->cmdline;
    size_t n = 0;
    while (src[n] && n < sizeof cmdline_buf - 1)
        n++;
    memcpy(cmdline_buf, src, n);
    cmdline_buf[n] = '\0';
}

/* Each module the loader gave (QEMU's -initrd): its size and its first line, so that
 * tests can see exactly which files reached the guest. */
static void put_modules(uint32_t magic, const struct multiboot_info *mbi)
{
    if (magic != MULTIBOOT_LOADER_MAGIC || !(mbi->flags & MULTIBOOT_INFO_MODS))
        return;
    const struct multiboot_module *mod = (const struct multiboot_module *)mbi->mods_addr;
    for (uint32_t i = 0; i < mbi->mods_count; i++) {
        const char *data = (const char *)mod[i].mod_start;
        uint32_t size = mod[i].mod_end - mod[i].mod_start;
        char line[MODULE_SHOWN + 1];
        uint32_t n = 0;
        while (n < size && n < MODULE_SHOWN && data[n] != '\n' && data[n] != '\0') {
            line[n] = data[n];
            n++;
        }
        line[n] = '\0';
        put("module[");
        put_u(i);
        put("].size=");
        put_u(size);
        put("\n");
        put_item("module", (int)i, line);
    }
}

void kmain(uint32_t magic, const struct multiboot_info *mbi)
{
    serial_init();
    put("hello from the urunc sample unikernel\n");
    if (magic != MULTIBOOT_LOADER_MAGIC)
        put("warning: not booted by a Multiboot loader\n");

    copy_cmdline(magic, mbi);
    cmdline_parse(cmdline_buf, &cl);

    for (int i = 0; i < cl.unknownc; i++)
        put_item("unknown param", -1, cl.unknown[i]);
    if (cl.truncated)
        put("warning: command line too long, truncated\n");
    put("argc=");
    put_u((uint32_t)cl.argc);
    put("\n");
    for (int i = 0; i < cl.argc; i++)
        put_item("argv", i, cl.argv[i]);
    for (int i = 0; i < cl.envc; i++)
        put_item("env", i, cl.env[i]);
    if (cl.netdev_ip)
        put_item("net", -1, cl.netdev_ip);
    put_modules(magic, mbi);

    if (cl.argc >= 2 && streq(cl.argv[1], "serve")) {
        uint8_t ip[4];
        if (!cl.netdev_ip || parse_ipv4(cl.netdev_ip, ip) != 0)
            put("serve: no usable netdev.ip=IP/PREFIX:GW:... parameter\n");
        else
            net_serve(ip);  /* returns only on failure, having said why */
    }
    if (cl.argc >= 2 && streq(cl.argv[1], "wait")) {
        /* Stay up doing nothing until the monitor is stopped from outside: what
         * tests of signals, state and teardown need from a long-running guest. */
        put("waiting\n");
        for (;;)
            __asm__ volatile("cli; hlt");
    }
    put("bye\n");
    /* boot.S resets the machine when we return. */
}
