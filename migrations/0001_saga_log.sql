-- The saga log: definitions, sagas, their steps, their timelines, and the
-- coordinators that run them. Every saga table is keyed by saga id first.
--
-- Statuses are the numbers of saga/types.h (saga_status_t, saga_step_status_t);
-- modes are 0 (saga) and 1 (2pc). Terminal saga statuses are 3, 4, 9 and 10;
-- the partial indexes below cover only the others ("active" sagas) and must all
-- spell that predicate the same way, so the planner can match it.

CREATE TABLE saga_definitions (
    name       text        NOT NULL CHECK (name <> ''),
    version    integer     NOT NULL CHECK (version > 0),
    mode       smallint    NOT NULL CHECK (mode IN (0, 1)),
    canonical  text        NOT NULL,
    body       jsonb       GENERATED ALWAYS AS (canonical::jsonb) STORED,
    hash       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);

CREATE TABLE sagas (
    id              uuid        NOT NULL,
    definition      text        NOT NULL,
    version         integer     NOT NULL,
    mode            smallint    NOT NULL CHECK (mode IN (0, 1)),
    n_steps         smallint    NOT NULL CHECK (n_steps >= 0),
    status          smallint    NOT NULL CHECK (status BETWEEN 1 AND 10),
    input           bytea       NOT NULL,
    idempotency_key text,
    owner           text,
    epoch           bigint      NOT NULL DEFAULT 1 CHECK (epoch > 0),
    lease_until     timestamptz,
    wake_at         timestamptz,
    deadline_at     timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    error           text,
    events          integer     NOT NULL DEFAULT 0, -- seq of the newest saga_events row
    write_token     bigint      NOT NULL DEFAULT 0, -- who wrote the row last (retry detection)
    PRIMARY KEY (id)
) WITH (fillfactor = 80);

-- Idempotent start: one saga per key.
CREATE UNIQUE INDEX sagas_idempotency_key ON sagas (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Active sagas due to wake, soonest first.
CREATE INDEX sagas_wake ON sagas (wake_at)
    WHERE status NOT IN (3, 4, 9, 10);
-- One coordinator's sagas (lease renewal, release), by lease end.
CREATE INDEX sagas_owner_lease ON sagas (owner, lease_until)
    WHERE status NOT IN (3, 4, 9, 10);
-- Expired leases, oldest first (claims by a peer).
CREATE INDEX sagas_lease ON sagas (lease_until)
    WHERE status NOT IN (3, 4, 9, 10);
-- Listing, newest first, with keyset paging on (created_at, id).
CREATE INDEX sagas_created ON sagas (created_at DESC, id DESC);
CREATE INDEX sagas_status_created ON sagas (status, created_at DESC, id DESC);
CREATE INDEX sagas_definition_created ON sagas (definition, created_at DESC, id DESC);

CREATE TABLE saga_steps (
    saga_id             uuid        NOT NULL,
    step                smallint    NOT NULL CHECK (step >= 0),
    status              smallint    NOT NULL CHECK (status BETWEEN 0 AND 10),
    attempts            integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    compensate_attempts integer     NOT NULL DEFAULT 0 CHECK (compensate_attempts >= 0),
    output              bytea,
    error               text,
    started_at          timestamptz,
    finished_at         timestamptz,
    PRIMARY KEY (saga_id, step)
) WITH (fillfactor = 80);

-- The timeline users inspect: append-only, seq counts from 1 per saga.
CREATE TABLE saga_events (
    saga_id uuid        NOT NULL,
    seq     integer     NOT NULL CHECK (seq > 0),
    at      timestamptz NOT NULL,
    kind    text        NOT NULL,
    step    smallint,
    attempt integer,
    status  smallint,
    detail  text,
    PRIMARY KEY (saga_id, seq)
);

-- Coordinator instances sharing this database.
CREATE TABLE saga_coordinators (
    id           text        NOT NULL CHECK (id <> ''),
    address      text        NOT NULL,
    started_at   timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL,
    PRIMARY KEY (id)
);
