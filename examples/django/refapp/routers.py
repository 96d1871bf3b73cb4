"""Reads from the replicas, writes to the primary (active when DATABASE_READ_URL is set)."""


class ReadReplicaRouter:
    def db_for_read(self, model, **hints):
        return "replica"

    def db_for_write(self, model, **hints):
        return "default"

    def allow_relation(self, obj1, obj2, **hints):
        # Both aliases are the same database (a replica is a copy of the primary).
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        # Migrations run on the primary only; replicas receive them by replication.
        return db == "default"
