-- Run by the postgres image on its first start (an empty data volume): the
-- example services keep their tables in a database of their own, beside the
-- saga log (POSTGRES_DB, "saga").
CREATE DATABASE shop;
