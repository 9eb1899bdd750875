-- Room for HOT updates. Each write of a saga updates its sagas row (timeline
-- counter, write token) and a saga_steps row, within milliseconds of the last
-- one; at fillfactor 80 most new row versions did not fit on their page, so
-- every update touched all of the row's indexes (seven on sagas). At 50 about
-- four updates in five stay on the page and touch no index, which measured
-- about a sixth less PostgreSQL CPU per record (tests/bench/store). Applies to
-- pages written from now on; VACUUM FULL or pg_repack rewrites older ones.
ALTER TABLE sagas SET (fillfactor = 50);
ALTER TABLE saga_steps SET (fillfactor = 50);
