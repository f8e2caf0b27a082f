/*
 * haraka_plugin.h: the C ABI of haraka-rs cdylib plugins.
 *
 * Produced from crates/haraka-plugin-abi; do not edit by hand.
 *
 * Rules:
 * - Export one function, HARAKA_PLUGIN_ENTRY, returning a static vtable.
 * - Every HkBytes is borrowed for the duration of the call that receives it;
 *   each side frees only what it allocated.
 * - Answer each hook call exactly once through host->complete(token, outcome),
 *   from any thread; a late or repeated completion is logged and ignored.
 * - Never let an exception or a panic unwind out of a function of the vtable.
 * - The library is never unloaded.
 */
#ifndef HARAKA_PLUGIN_H
#define HARAKA_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HARAKA_PLUGIN_ABI_MAJOR 1
#define HARAKA_PLUGIN_ABI_MINOR 0
#define HARAKA_PLUGIN_ENTRY haraka_plugin_entry_v1
#define HK_OK 0
#define HK_ERROR 1
#define HK_LOG_ERROR 1
#define HK_LOG_WARN 2
#define HK_LOG_INFO 3
#define HK_LOG_DEBUG 4
#define HK_LOG_TRACE 5
#define HK_CONT 900
#define HK_STOP 901
#define HK_DENY 902
#define HK_DENYSOFT 903
#define HK_DENYDISCONNECT 904
#define HK_DISCONNECT 905
#define HK_OK_ACTION 906
#define HK_NEXT_HOOK 907
#define HK_DELAY 908
#define HK_DENYSOFTDISCONNECT 909

/*
 * A borrowed byte slice: valid only during the call that receives it.
 * `ptr` may be NULL when `len` is 0.
 */
typedef struct HkBytes {
    const uint8_t *ptr;
    size_t len;
} HkBytes;

/*
 * A hook's answer (Haraka's `next(code, msg)` plus the plugin's edits), passed
 * to `complete`. Every slice is borrowed for the duration of that call.
 */
typedef struct HkOutcome {
    /* `sizeof(HkOutcome)` as the plugin knows it. */
    uint32_t struct_size;
    /* One of `HK_CONT` ... `HK_DENYSOFTDISCONNECT` (Haraka's 900 ... 909). */
    uint32_t action;
    /* An SMTP code replacing the hook's default (a DSN's code), or 0. */
    uint32_t reply_code;
    /* 1 when `body` replaces the message body, 0 to leave it unchanged. */
    uint32_t body_replaced;
    /* Reply lines, UTF-8, separated by `\n`; empty for no message. */
    HkBytes reply;
    /* The connection / mail view after the hook (JSON), or empty for no change. */
    HkBytes changes;
    /* The new message body when `body_replaced` is 1. */
    HkBytes body;
} HkOutcome;

/* What the host offers every plugin; static for the life of the process. */
typedef struct HkHostApi {
    /* `sizeof(HkHostApi)` as the host knows it. */
    uint32_t struct_size;
    uint32_t abi_major;
    uint32_t abi_minor;
    /* The most verbose `HK_LOG_*` level the host records (0 = none). */
    uint32_t max_log_level;
    /* `log(level, plugin_name, message)`: UTF-8 text, borrowed for the call. */
    void (*log)(uint32_t, HkBytes, HkBytes);
    /*
     * `complete(token, outcome)`: answers the hook call `token`, exactly once,
     * from any thread. Later calls with the same token are logged and ignored.
     */
    void (*complete)(uint64_t, const HkOutcome *);
} HkHostApi;

/* The arguments of `create`; every pointer is valid only during that call. */
typedef struct HkInit {
    /* `sizeof(HkInit)` as the host knows it. */
    uint32_t struct_size;
    uint32_t reserved;
    /* The plugin's name (its line in `config/plugins`, or the library's stem). */
    HkBytes name;
    /* The server's `-c ROOT` directory (bytes of the path). */
    HkBytes root;
    /* Passed back to `report_error` and `register_hook`. */
    void *ctx;
    /* `report_error(ctx, message)`: why `create` fails (UTF-8). */
    void (*report_error)(void *, HkBytes);
    /* `register_hook(ctx, hook_name, priority)`: one call per hook, in order. */
    void (*register_hook)(void *, HkBytes, int32_t);
} HkInit;

/* One hook invocation; every slice is borrowed for the duration of `hook`. */
typedef struct HkHookCall {
    /* `sizeof(HkHookCall)` as the host knows it. */
    uint32_t struct_size;
    uint32_t reserved;
    /* Pass this to `complete`. */
    uint64_t token;
    /* Haraka's hook name (`rcpt`, `data_post`, ...). */
    HkBytes hook;
    /* The connection (or queued mail) view and the hook arguments (JSON). */
    HkBytes request;
    /* The message body, CRLF line ends, dot-unstuffed (empty before DATA). */
    HkBytes body;
} HkHookCall;

/* What a plugin library exports through its entry symbol; static. */
typedef struct HkPluginVtable {
    /* `sizeof(HkPluginVtable)` at the plugin's minor version. */
    uint32_t struct_size;
    uint32_t abi_major;
    uint32_t abi_minor;
    uint32_t reserved;
    /*
     * `create(host, init, out_instance)`: build one plugin instance; `HK_OK` or
     * `HK_ERROR` (after `report_error`). `host` outlives the instance.
     */
    int32_t (*create)(const HkHostApi *, const HkInit *, void **);
    /* `hook(instance, call)`: start a hook; answer through `complete`. */
    void (*hook)(void *, const HkHookCall *);
    /* `shutdown(instance)`: the server is stopping. */
    void (*shutdown)(void *);
    /* `destroy(instance)`: the host holds no more references; free it. */
    void (*destroy)(void *);
} HkPluginVtable;

/* The entry point every plugin library exports (HARAKA_PLUGIN_ENTRY). */
typedef const HkPluginVtable *(*haraka_plugin_entry_fn)(void);
const HkPluginVtable *haraka_plugin_entry_v1(void);

#ifdef __cplusplus
}
#endif

#endif /* HARAKA_PLUGIN_H */
