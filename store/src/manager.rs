//! ManagerTower manager weights: how much each cross-modal layer's manager takes from each
//! unimodal layer, over training.
