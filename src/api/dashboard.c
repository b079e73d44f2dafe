/*
 * dashboard.c — GET /: the web dashboard, one static page (dashboard.html,
 * embedded in the binary with the assembler's .incbin, so the server needs
 * no files beside itself).
 *
 * The page holds no data and no secret: it asks for a token and calls the
 * REST API with it, so serving it needs no token (like /healthz). Its
 * headers keep it from being framed or from loading anything but itself.
 */
#include <string.h>

#include "api/api.h"

__asm__(".section .rodata\n"
        ".global wharf_dashboard_html\n"
        ".hidden wharf_dashboard_html\n"
        "wharf_dashboard_html:\n"
        ".incbin \"src/api/dashboard.html\"\n"
        ".byte 0\n"
        ".previous\n");
extern const char wharf_dashboard_html[];

void api_dashboard_reply(http_exchange_t *exchange) {
  http_exchange_add_header(exchange, "Content-Security-Policy",
                           "default-src 'none'; script-src 'unsafe-inline'; "
                           "style-src 'unsafe-inline'; connect-src 'self'; "
                           "frame-ancestors 'none'; form-action 'none'");
  http_exchange_add_header(exchange, "X-Frame-Options", "DENY");
  http_exchange_add_header(exchange, "Referrer-Policy", "no-referrer");
  http_exchange_add_header(exchange, "Cache-Control", "no-cache");
  http_exchange_respond(exchange, 200, "text/html; charset=utf-8", wharf_dashboard_html,
                        strlen(wharf_dashboard_html));
}
