/* Names of the protocol's enumerations. Touches nothing but static strings. */
#include "saga/types.h"

const char *saga_status_name(saga_status_t status)
{
    switch (status) {
    case SAGA_STATUS_RUNNING:
        return "running";
    case SAGA_STATUS_COMPENSATING:
        return "compensating";
    case SAGA_STATUS_COMPLETED:
        return "completed";
    case SAGA_STATUS_COMPENSATED:
        return "compensated";
    case SAGA_STATUS_STUCK:
        return "stuck";
    case SAGA_STATUS_PREPARING:
        return "preparing";
    case SAGA_STATUS_COMMITTING:
        return "committing";
    case SAGA_STATUS_ABORTING:
        return "aborting";
    case SAGA_STATUS_COMMITTED:
        return "committed";
    case SAGA_STATUS_ABORTED:
        return "aborted";
    case SAGA_STATUS_UNKNOWN:
        break;
    }
    return "unknown";
}

const char *saga_step_status_name(saga_step_status_t status)
{
    switch (status) {
    case SAGA_STEP_PENDING:
        return "pending";
    case SAGA_STEP_RUNNING:
        return "running";
    case SAGA_STEP_WAITING:
        return "waiting";
    case SAGA_STEP_SUCCEEDED:
        return "succeeded";
    case SAGA_STEP_FAILED:
        return "failed";
    case SAGA_STEP_COMPENSATING:
        return "compensating";
    case SAGA_STEP_COMPENSATED:
        return "compensated";
    case SAGA_STEP_COMMITTED:
        return "committed";
    case SAGA_STEP_ABORTED:
        return "aborted";
    case SAGA_STEP_STUCK:
        return "stuck";
    case SAGA_STEP_SKIPPED:
        return "skipped";
    }
    return "unknown";
}

const char *saga_op_name(saga_op_t op)
{
    switch (op) {
    case SAGA_OP_ACTION:
        return "action";
    case SAGA_OP_COMPENSATE:
        return "compensate";
    case SAGA_OP_PREPARE:
        return "prepare";
    case SAGA_OP_COMMIT:
        return "commit";
    case SAGA_OP_ABORT:
        return "abort";
    }
    return "unknown";
}

const char *saga_outcome_name(saga_outcome_t outcome)
{
    switch (outcome) {
    case SAGA_OUTCOME_OK:
        return "ok";
    case SAGA_OUTCOME_FAIL:
        return "fail";
    case SAGA_OUTCOME_RETRY:
        return "retry";
    }
    return "unknown";
}

int saga_status_is_terminal(saga_status_t status)
{
    return status == SAGA_STATUS_COMPLETED || status == SAGA_STATUS_COMPENSATED ||
           status == SAGA_STATUS_COMMITTED || status == SAGA_STATUS_ABORTED;
}

int saga_step_status_is_settled(saga_step_status_t status)
{
    switch (status) {
    case SAGA_STEP_SUCCEEDED:
    case SAGA_STEP_FAILED:
    case SAGA_STEP_COMPENSATED:
    case SAGA_STEP_COMMITTED:
    case SAGA_STEP_ABORTED:
    case SAGA_STEP_STUCK:
    case SAGA_STEP_SKIPPED:
        return 1;
    case SAGA_STEP_PENDING:
    case SAGA_STEP_RUNNING:
    case SAGA_STEP_WAITING:
    case SAGA_STEP_COMPENSATING:
        break;
    }
    return 0;
}
