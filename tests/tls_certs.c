/*
 * Test certificates, generated once per run by a small shell script that
 * drives openssl(1) in a mkdtemp folder (removed at exit). Debian 12's
 * openssl 3.0 has no `x509 -not_before`, so the expired leaf is signed by
 * `openssl ca` with -startdate/-enddate in the past.
 */
#define _GNU_SOURCE
#include "tls_certs.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tl_test_certs_t certs;
static int certs_ok;
static pthread_once_t certs_once = PTHREAD_ONCE_INIT;
static char certs_dir[256];
static char paths[20][320];
static int npaths;

static const char *path_of(const char *name) {
    char *p = paths[npaths++];
    snprintf(p, sizeof paths[0], "%s/%s", certs_dir, name);
    return p;
}

static void remove_dir(void) {
    if (certs_dir[0] == '\0')
        return;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", certs_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "tls_certs: could not remove %s\n", certs_dir);
    certs_dir[0] = '\0';
}

/* The script runs in the folder; every step is checked (set -e). */
static const char script[] =
    "set -e\n"
    "exec >gen.log 2>&1\n"
    "O=openssl\n"
    "EC='-algorithm EC -pkeyopt ec_paramgen_curve:P-256'\n"
    "printf 'basicConstraints=CA:FALSE\\nkeyUsage=digitalSignature,keyEncipherment\\n"
    "extendedKeyUsage=serverAuth\\n"
    "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\\n' > localhost.ext\n"
    "printf 'basicConstraints=CA:FALSE\\nkeyUsage=digitalSignature,keyEncipherment\\n"
    "extendedKeyUsage=serverAuth\\n"
    "subjectAltName=DNS:other.test,DNS:*.wild.test\\n' > other.ext\n"
    "printf 'basicConstraints=CA:FALSE\\nkeyUsage=digitalSignature\\n"
    "extendedKeyUsage=clientAuth\\n' > client.ext\n"
    /* the CAs */
    "$O genpkey $EC -out ca.key\n"
    "$O req -x509 -new -key ca.key -subj '/CN=tulip test CA' -days 3650 "
    "-sha256 -out ca.pem\n"
    "$O genpkey $EC -out other_ca.key\n"
    "$O req -x509 -new -key other_ca.key -subj '/CN=tulip other CA' "
    "-days 3650 -sha256 -out other_ca.pem\n"
    /* leaves signed by the CA: sign NAME CN EXT SERIAL */
    "sign() {\n"
    "  $O req -new -key $1.key -subj \"/CN=$2\" -out $1.csr\n"
    "  $O x509 -req -in $1.csr -CA ca.pem -CAkey ca.key -set_serial $4 "
    "-days 3650 -sha256 -extfile $3 -out $1.pem\n"
    "}\n"
    "$O genpkey $EC -out server.key\n"
    "sign server localhost localhost.ext 1001\n"
    "$O genpkey $EC -out other.key\n"
    "sign other other.test other.ext 1002\n"
    "$O genpkey $EC -out client.key\n"
    "sign client 'tulip client' client.ext 1003\n"
    "$O genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key\n"
    "sign rsa localhost localhost.ext 1004\n"
    /* self-signed localhost */
    "$O genpkey $EC -out self.key\n"
    "$O req -x509 -new -key self.key -subj /CN=localhost -days 3650 -sha256 "
    "-addext subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1 -out self.pem\n"
    /* expired: `openssl ca` with dates in the past */
    "mkdir newcerts\n"
    ": > index.txt\n"
    "echo 1005 > serial\n"
    "printf '[ca]\\ndefault_ca=d\\n[d]\\ndir=.\\ndatabase=index.txt\\n"
    "new_certs_dir=newcerts\\nserial=serial\\ndefault_md=sha256\\n"
    "policy=p\\nunique_subject=no\\n[p]\\ncommonName=supplied\\n"
    "[ext]\\nbasicConstraints=CA:FALSE\\n"
    "keyUsage=digitalSignature,keyEncipherment\\n"
    "extendedKeyUsage=serverAuth\\n"
    "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\\n' > ca.cnf\n"
    "$O genpkey $EC -out expired.key\n"
    "$O req -new -key expired.key -subj /CN=localhost -out expired.csr\n"
    "$O ca -batch -notext -config ca.cnf -cert ca.pem -keyfile ca.key "
    "-in expired.csr -out expired.pem -startdate 20200101000000Z "
    "-enddate 20200201000000Z -extensions ext\n"
    "echo ok\n";

static void make_certs(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(certs_dir, sizeof certs_dir, "%s/tulip-certs-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(certs_dir) == NULL) {
        fprintf(stderr, "tls_certs: mkdtemp %s: %s\n", certs_dir,
                strerror(errno));
        certs_dir[0] = '\0';
        return;
    }
    atexit(remove_dir);
    char path[400];
    snprintf(path, sizeof path, "%s/gen.sh", certs_dir);
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(script, f) < 0 || fclose(f) != 0) {
        fprintf(stderr, "tls_certs: cannot write %s\n", path);
        return;
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cd '%s' && /bin/sh ./gen.sh", certs_dir);
    int rc = system(cmd);
    if (rc != 0) {
        fprintf(stderr, "tls_certs: openssl failed (status %d); its output:\n",
                rc);
        snprintf(cmd, sizeof cmd, "cat '%s/gen.log' >&2", certs_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "  (no log)\n");
        return;
    }
    certs.dir = certs_dir;
    certs.ca_cert = path_of("ca.pem");
    certs.server_cert = path_of("server.pem");
    certs.server_key = path_of("server.key");
    certs.other_cert = path_of("other.pem");
    certs.other_key = path_of("other.key");
    certs.client_cert = path_of("client.pem");
    certs.client_key = path_of("client.key");
    certs.expired_cert = path_of("expired.pem");
    certs.expired_key = path_of("expired.key");
    certs.self_cert = path_of("self.pem");
    certs.self_key = path_of("self.key");
    certs.other_ca_cert = path_of("other_ca.pem");
    certs.rsa_cert = path_of("rsa.pem");
    certs.rsa_key = path_of("rsa.key");
    certs_ok = 1;
}

const tl_test_certs_t *tl_test_certs(void) {
    pthread_once(&certs_once, make_certs);
    return certs_ok ? &certs : NULL;
}

int tl_test_read_file(const char *path, char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -errno;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *nb = realloc(buf, cap * 2 + 1);
        if (nb == NULL) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    int err = ferror(f) ? -EIO : 0;
    fclose(f);
    if (buf == NULL)
        return -ENOMEM;
    if (err) {
        free(buf);
        return err;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}
