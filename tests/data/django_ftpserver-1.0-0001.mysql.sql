--
-- Create model FTPUserAccount
--
CREATE TABLE `django_ftpserver_ftpuseraccount` (`id` integer AUTO_INCREMENT NOT NULL PRIMARY KEY, `last_login` datetime(6) NULL, `home_dir` varchar(1024) NULL);
--
-- Create model FTPUserGroup
--
CREATE TABLE `django_ftpserver_ftpusergroup` (`id` integer AUTO_INCREMENT NOT NULL PRIMARY KEY, `name` varchar(30) NOT NULL UNIQUE, `permission` varchar(8) NOT NULL, `home_dir` varchar(1024) NULL);
--
-- Add field group to ftpuseraccount
--
ALTER TABLE `django_ftpserver_ftpuseraccount` ADD COLUMN `group_id` integer NOT NULL , ADD CONSTRAINT `django_ftpserver_ftp_group_id_7bafe726_fk_django_ft` FOREIGN KEY (`group_id`) REFERENCES `django_ftpserver_ftpusergroup`(`id`);
--
-- Add field user to ftpuseraccount
--
ALTER TABLE `django_ftpserver_ftpuseraccount` ADD COLUMN `user_id` integer NOT NULL UNIQUE , ADD CONSTRAINT `django_ftpserver_ftpuseraccount_user_id_a24598e4_fk_auth_user_id` FOREIGN KEY (`user_id`) REFERENCES `auth_user`(`id`);
