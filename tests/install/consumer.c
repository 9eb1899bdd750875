/* A program outside the tree that uses the installed SDK: it must build with
 * `pkg-config --cflags --libs libsaga` and with CMake's find_package(saga). */
#include <stdio.h>
#include <string.h>

#include <saga/error.h>
#include <saga/types.h>

int main(void)
{
    if (strcmp(saga_err_name(SAGA_ENOTFOUND), "SAGA_ENOTFOUND") != 0)
        return 1;
    if (strcmp(saga_status_name(SAGA_STATUS_COMPLETED), "completed") != 0)
        return 1;
    printf("libsaga %s: %s\n", saga_version(), saga_strerror(SAGA_EUNAVAIL));
    return 0;
}
