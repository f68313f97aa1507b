/*
 * tulip.h - the whole public ABI of tulip, asyncio's design in C.
 * Include this, or the module headers under tulip/ one by one.
 */
#ifndef TULIP_H
#define TULIP_H

#include "tulip/core.h"
#include "tulip/backend.h"
#include "tulip/loop.h"
#include "tulip/future.h"
#include "tulip/sync.h"
#include "tulip/task.h"
#include "tulip/executor.h"
#include "tulip/dns.h"
#include "tulip/netstack.h"
#include "tulip/transport.h"
#include "tulip/tls.h"
#include "tulip/process.h"
#include "tulip/stream.h"
#include "tulip/sock.h"

#endif /* TULIP_H */
