// @peculiar/x509 needs a Reflect metadata polyfill loaded before it.
import 'reflect-metadata';
