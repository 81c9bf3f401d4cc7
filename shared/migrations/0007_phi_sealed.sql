-- The schema's sealed columns hold only encrypted values (shared/phi.py): set by the service's
-- first start on a database created encrypted, or by `triage phi rotate` once it has encrypted
-- what was stored before. From then on a value without the `phi1:` tag in a sealed column is
-- refused, not read as it is (it can only have been written around the application).
CREATE TABLE {schema}.phi_sealed (
    one_row    boolean     PRIMARY KEY DEFAULT true CHECK (one_row),
    sealed_at  timestamptz NOT NULL DEFAULT now()
);
