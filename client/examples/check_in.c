/* A device's check-in from C, through seatkeeper-client's C interface:
 *   cc check_in.c -I ../include -L <target>/release -lseatkeeper_client -o check_in
 *   ./check_in https://licenses.example.com sk_prod_… editor LAPTOP-0042 [cache folder]
 * Exits 0 when licensed, 1 when not, 2 on an error. */
#include <stdio.h>
#include "seatkeeper.h"

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s SERVER KEY PRODUCT SERIAL [CACHE]\n", argv[0]);
        return 2;
    }
    SkClient *client = NULL;
    if (sk_client_new(argv[1], argv[2], argv[3], argc > 5 ? argv[5] : NULL, NULL, &client) != SK_OK) {
        fprintf(stderr, "setting up: %s\n", sk_last_error());
        return 2;
    }
    SkDecision *decision = NULL;
    int status = sk_check_in(client, argv[4], &decision);
    if (status != SK_OK) {
        fprintf(stderr, "error %d: %s\n", status, sk_last_error());
        sk_client_free(client);
        return 2;
    }
    bool licensed = sk_decision_licensed(decision);
    if (licensed)
        printf("licensed until %lld (from the %s)\n", (long long)sk_decision_license_expires_at(decision),
               sk_decision_source(decision) == SK_SOURCE_CACHE ? "cache" : "server");
    else
        printf("not licensed: %s\n", sk_decision_reason(decision));
    sk_decision_free(decision);
    sk_client_free(client);
    return licensed ? 0 : 1;
}
