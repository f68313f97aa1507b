/* Error names and messages, from the one table in tulip/core.h. */
#include "tulip/core.h"

const char *tl_strerror(int err) {
    switch (err) {
    case 0:
        return "success";
#define TL__ERRNO_MSG(name, value, msg) case TL_##name: return msg;
        TL_ERRNO_MAP(TL__ERRNO_MSG)
#undef TL__ERRNO_MSG
    default:
        return "unknown error";
    }
}

const char *tl_err_name(int err) {
    switch (err) {
    case 0:
        return "TL_OK";
#define TL__ERRNO_NAME(name, value, msg) case TL_##name: return "TL_" #name;
        TL_ERRNO_MAP(TL__ERRNO_NAME)
#undef TL__ERRNO_NAME
    default:
        return "TL_EUNKNOWN";
    }
}

unsigned tl_version(void) { return TL_VERSION_HEX; }

#define TL__STR2(x) #x
#define TL__STR(x) TL__STR2(x)
const char *tl_version_string(void) {
    return TL__STR(TL_VERSION_MAJOR) "." TL__STR(TL_VERSION_MINOR) "." TL__STR(
        TL_VERSION_PATCH);
}
