-- Which store incarnation (one `sagad` process lifetime) holds a saga: set by
-- the create and by every claim. Lease renewal extends only the sagas its own
-- incarnation holds, so sagas left behind under a reused owner id expire and
-- are claimed instead of being renewed forever; a restart's claim of its own
-- sagas (STORE_CLAIM_OWN) takes only those left by an earlier incarnation.
ALTER TABLE sagas ADD COLUMN holder bigint NOT NULL DEFAULT 0;
