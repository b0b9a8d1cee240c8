/*
 * vitalog — the command line. Thin: parses arguments and calls modules.
 *
 *   vitalog serve --data DIR --listen HOST:PORT [options]
 *   vitalog --help | vitalog CMD --help | vitalog --version
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "vitalog/cli.h"
#include "vitalog/util.h"

static const char usage_main[] =
    "usage: vitalog <command> [options]\n"
    "\n"
    "vitalog is a FHIR R4 (4.0.1) server for biometric and wearable data,\n"
    "storing resources in SQLite.\n"
    "\n"
    "commands:\n"
    "  serve      run the FHIR server\n"
    "  verify     verify a ledger export (or a data directory) offline\n"
    "  export     write the ledger export or the records export of a data directory\n"
    "  key        show, list or rotate the ledger signing key\n"
    "  token      create, list or revoke bearer tokens\n"
    "  import     import a patient's Apple Health export (export.xml)\n"
    "\n"
    "options:\n"
    "  -h, --help     show this help (vitalog CMD --help for a command)\n"
    "  --version      print the version\n";

int main(int argc, char **argv)
{
    if (sodium_init() < 0) {
        fputs("vitalog: libsodium failed to initialize\n", stderr);
        return 1;
    }
    if (argc < 2) {
        fputs(usage_main, stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        fputs(usage_main, stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("vitalog %s (FHIR %s)\n", VL_VERSION, VL_FHIR_VERSION);
        return 0;
    }
    if (!strcmp(argv[1], "serve"))
        return vl_cli_serve(argc - 1, argv + 1);
    if (!strcmp(argv[1], "verify"))
        return vl_cli_verify(argc - 1, argv + 1);
    if (!strcmp(argv[1], "export"))
        return vl_cli_export(argc - 1, argv + 1);
    if (!strcmp(argv[1], "key"))
        return vl_cli_key(argc - 1, argv + 1);
    if (!strcmp(argv[1], "token"))
        return vl_cli_token(argc - 1, argv + 1);
    if (!strcmp(argv[1], "import"))
        return vl_cli_import(argc - 1, argv + 1);
    fprintf(stderr, "vitalog: unknown command '%s'\n\n%s", argv[1], usage_main);
    return 2;
}
