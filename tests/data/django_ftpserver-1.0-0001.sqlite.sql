BEGIN;
--
-- Create model FTPUserAccount
--
CREATE TABLE "django_ftpserver_ftpuseraccount" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "last_login" datetime NULL, "home_dir" varchar(1024) NULL);
--
-- Create model FTPUserGroup
--
CREATE TABLE "django_ftpserver_ftpusergroup" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "name" varchar(30) NOT NULL UNIQUE, "permission" varchar(8) NOT NULL, "home_dir" varchar(1024) NULL);
--
-- Add field group to ftpuseraccount
--
CREATE TABLE "new__django_ftpserver_ftpuseraccount" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "last_login" datetime NULL, "home_dir" varchar(1024) NULL, "group_id" integer NOT NULL REFERENCES "django_ftpserver_ftpusergroup" ("id") DEFERRABLE INITIALLY DEFERRED);
INSERT INTO "new__django_ftpserver_ftpuseraccount" ("id", "last_login", "home_dir", "group_id") SELECT "id", "last_login", "home_dir", NULL FROM "django_ftpserver_ftpuseraccount";
DROP TABLE "django_ftpserver_ftpuseraccount";
ALTER TABLE "new__django_ftpserver_ftpuseraccount" RENAME TO "django_ftpserver_ftpuseraccount";
CREATE INDEX "django_ftpserver_ftpuseraccount_group_id_7bafe726" ON "django_ftpserver_ftpuseraccount" ("group_id");
--
-- Add field user to ftpuseraccount
--
CREATE TABLE "new__django_ftpserver_ftpuseraccount" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "last_login" datetime NULL, "home_dir" varchar(1024) NULL, "group_id" integer NOT NULL REFERENCES "django_ftpserver_ftpusergroup" ("id") DEFERRABLE INITIALLY DEFERRED, "user_id" integer NOT NULL UNIQUE REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED);
INSERT INTO "new__django_ftpserver_ftpuseraccount" ("id", "last_login", "home_dir", "group_id", "user_id") SELECT "id", "last_login", "home_dir", "group_id", NULL FROM "django_ftpserver_ftpuseraccount";
DROP TABLE "django_ftpserver_ftpuseraccount";
ALTER TABLE "new__django_ftpserver_ftpuseraccount" RENAME TO "django_ftpserver_ftpuseraccount";
CREATE INDEX "django_ftpserver_ftpuseraccount_group_id_7bafe726" ON "django_ftpserver_ftpuseraccount" ("group_id");
COMMIT;
