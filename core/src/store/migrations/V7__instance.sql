-- one row: the id of this Ocelot installation, which labels its build containers so that a
-- worker sweeping leftovers on a shared Docker host only touches its own installation's
CREATE TABLE ocelot_instance (
    one_row BOOLEAN PRIMARY KEY DEFAULT true CHECK (one_row),
    id      UUID NOT NULL DEFAULT gen_random_uuid()
);
INSERT INTO ocelot_instance DEFAULT VALUES;
