DROP TABLE managed_objects;
